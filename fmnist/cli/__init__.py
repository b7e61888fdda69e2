"""The command line: `fmnist-job` (fmnist/cli/main.py) and one module per command."""

from fmnist.cli.main import app, main

__all__ = ["app", "main"]
