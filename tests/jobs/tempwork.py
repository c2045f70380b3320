"""Test child job: works in a temporary folder it removes on the way out (as the imaging job does),
with a grandchild in its process group; records the pids, then works for a long time."""

import os
import shutil
import subprocess
import sys
import time

pidfile, tmpdir = sys.argv[1], sys.argv[2]
os.makedirs(tmpdir)
grandchild = subprocess.Popen(["sleep", "600"])
try:
    with open(pidfile + ".part", "w") as fh:
        fh.write(f"{os.getpid()} {grandchild.pid}\n")
    os.replace(pidfile + ".part", pidfile)
    print("child: working in", tmpdir, flush=True)
    time.sleep(600)
finally:
    shutil.rmtree(tmpdir, ignore_errors=True)
    print("child: interrupted; temporary folder removed", flush=True)
