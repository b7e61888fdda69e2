"""`python -m fmnist.cli`: the same entry point as the `fmnist-job` script."""

from fmnist.cli.main import run

run()
