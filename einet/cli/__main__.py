"""``python -m einet.cli``: the ``einet`` command."""

import sys

from .main import entry

sys.exit(entry())
