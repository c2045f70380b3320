"""Test child job: reports metrics the way every contimg child job does."""

import sys

from contimg.childjobs.report import report

args = sys.argv[1:]
report(
    {"answer": 42, "args": args[: args.index("--report")] if "--report" in args else args},
    args[args.index("--report") + 1] if "--report" in args else None,
)
