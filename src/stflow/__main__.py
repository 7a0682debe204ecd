"""``python -m stflow ...`` is the ``stflow`` command."""

import sys

from .cli import exit_with, main

exit_with(main())
