"""Test child job: prints progress, then fails with a clear message."""

import sys

print("child: step 1 ok", flush=True)
print("child: error: the MS is all flagged", file=sys.stderr, flush=True)
sys.exit(3)
