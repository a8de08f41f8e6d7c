"""``python -m client``: the command line (``python -m client --help``).

Also the ``metrics-client`` console script, whose wrapper calls
``sys.exit(main())``.
"""

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
