"""``python -m dmlkeras``: the same as the ``dmlkeras`` command."""

import sys

from dmlkeras.cli import main

sys.exit(main())
