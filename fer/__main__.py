"""`python -m fer` is the `fer` command."""
import sys

from fer.cli.main import main

sys.exit(main())
