"""``python -m gpbound.cli``."""
import sys

from . import main

sys.exit(main())
