"""Test child job: starts a grandchild that sleeps, records both pids, then hangs."""

import os
import subprocess
import sys
import time

pidfile = sys.argv[1]
grandchild = subprocess.Popen(["sleep", "600"])
with open(pidfile, "w") as fh:
    fh.write(f"{os.getpid()} {grandchild.pid}\n")
print("child: started grandchild", grandchild.pid, "and now hanging", flush=True)
time.sleep(600)
