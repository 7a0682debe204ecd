"""``python -m stflow ...`` is the ``stflow`` command."""


from .cli import exit_with, main

exit_with(main())
