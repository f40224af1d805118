"""``python -m pddlite``: the same command line as the ``pddlite`` script."""

import sys

from pddlite.cli import main

sys.exit(main())
