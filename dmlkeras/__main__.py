"""``python -m dmlkeras``: the same as the ``dmlkeras`` command."""

import sys

from dmlkeras.cli import main

if __name__ == "__main__":
    sys.exit(main())
