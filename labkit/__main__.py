"""``python -m labkit``: the labkit command."""

import sys

from labkit.cli import command

sys.exit(command())
