"""``python -m callcenter ...`` is the same as the ``callcenter`` console script."""

import sys

from callcenter.cli import main

sys.exit(main())
