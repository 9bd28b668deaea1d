"""``python -m bench.check`` (``make bench-check``): which recorded benchmark tables are older
than the code they measure.

Reads ``bench/RESULTS.md``: for each block, the commit its stamp names and whether the code it
measures (:data:`bench.stamp.MEASURED_CODE`) changed between that commit and ``HEAD``; also any
table outside a block, which names no commit at all. It informs and exits 0 whatever it finds:
an old table is a reason to re-measure (``make bench`` and the commands the blocks name), not a
broken build.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.stamp import REPO, RESULTS_MD, check, unstamped_tables


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per recorded table, the out-of-date ones first; always returns 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_MD, help="RESULTS.md to read")
    args = parser.parse_args(argv)
    ages = check(args.results, REPO)
    old = [age for age in ages if not age.current]
    loose = unstamped_tables(args.results.read_text())
    print(f"{len(old)} of {len(ages)} recorded tables are older than the code they measure:")
    for age in old:
        print(f"  {age.describe()}")
    if loose:
        print(f"{len(loose)} table(s) outside any <!-- bench:NAME --> block name no commit:")
        for where in loose:
            print(f"  {where}")
    current = [age for age in ages if age.current]
    if current:
        print("current:")
        for age in current:
            print(f"  {age.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
