"""``python -m neurograph``: the command line (see :mod:`neurograph.cli`)."""

import sys

from .cli import main

sys.exit(main())
