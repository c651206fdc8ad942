"""``python -m contrastkit``."""

import sys

from contrastkit.cli.main import main

sys.exit(main())
