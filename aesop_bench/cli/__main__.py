"""``python -m aesop_bench.cli``, as ``aesop-bench``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
