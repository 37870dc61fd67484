"""The zoo's RRDB entries that the reproduce tests use, as small RRDBs (2 blocks of 16 features), so that their
stand-in weights run in a fraction of a second per image on a CPU. Imported by the tests; run as a script it is
``aesop-bench`` with those entries, for a test's subprocess."""

from __future__ import annotations

import dataclasses
import sys

SMALL_RRDB = {"num_feat": 16, "num_block": 2, "num_grow_ch": 8}
NAMES = ("esrgan", "aesop_rrdb")


def small_entries() -> dict:
    """The entries of :data:`NAMES` with :data:`SMALL_RRDB` options."""
    from aesop_bench.models.zoo import ZOO

    return {n: dataclasses.replace(ZOO[n], arch_opts=dict(SMALL_RRDB)) for n in NAMES}


if __name__ == "__main__":
    from aesop_bench.cli import main
    from aesop_bench.models.zoo import ZOO

    ZOO.update(small_entries())
    sys.exit(main(sys.argv[1:]))
