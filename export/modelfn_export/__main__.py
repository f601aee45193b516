"""``python -m modelfn_export export|push ...`` (see :mod:`modelfn_export.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
