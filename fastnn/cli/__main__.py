"""python -m fastnn.cli: the fastnn command."""

import sys

from .main import main

sys.exit(main())
