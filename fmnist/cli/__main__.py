"""`python -m fmnist.cli`: the same entry point as the `fmnist-job` script."""

import sys

from fmnist.cli.main import main

sys.exit(main())
