"""``python -m stflow ...`` is the ``stflow`` command."""

import sys

from .cli import main

sys.exit(main())
