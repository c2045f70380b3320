"""A child job's memory (contimg.childjobs.memory): page faults and huge pages as the kernel counts them."""

import json
import os
import subprocess
import sys

import pytest

# allocate, touch and free a 100 MB array 20 times; print the minor page faults the kernel counted for it
LOOP = """
import resource, numpy as np
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(100_000_000 // 8)
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""
KEEP = "from contimg.childjobs.memory import keep_freed_memory; assert keep_freed_memory()\n"
CHILD = (
    "import subprocess, sys; "
    "print(subprocess.run([sys.executable, '-c', {loop!r}], capture_output=True, text=True).stdout)"
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def _run(code: str, **env) -> str:
    """The stdout of ``python -c code`` with no memory setting of ours in its environment, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout


def _printed(code: str) -> int:
    """The number ``python -c code`` prints last (a count of the kernel's)."""
    return int(_run(code).split()[-1])


def test_the_job_and_the_processes_it_starts_reuse_freed_memory():
    plain = _printed(LOOP)
    kept = _printed(KEEP + LOOP)
    child = _printed(KEEP + CHILD.format(loop=LOOP))  # a worker or WSClean: told through the environment
    # each fresh 100 MB costs at least its 2 MB huge pages in faults (50), and 4 kB pages 24,000
    assert plain >= 20 * 50
    assert kept < plain / 5 and child < plain / 5, (plain, kept, child)


def test_an_operators_setting_is_left_as_it_is():
    code = "import os, json;" + KEEP.replace("; assert", ";") + "print(json.dumps(dict(os.environ)))"
    seen = json.loads(_run(code, MALLOC_TRIM_THRESHOLD_="12345"))
    assert seen["MALLOC_TRIM_THRESHOLD_"] == "12345"
    assert seen["MALLOC_MMAP_THRESHOLD_"] == str(1 << 30)


# touch a 400 MB array and print the kernel's count of this process's anonymous memory in huge pages (kB)
HUGE = """
import numpy as np
a = np.ones(50_000_000)
print(next(int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages:")))
"""
SMALL = "from contimg.childjobs.memory import numpy_small_pages; assert numpy_small_pages()\n"


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "absent"


def test_numpy_asks_for_no_huge_pages_in_the_job_and_the_processes_it_starts():
    if _thp_mode() != "madvise":
        pytest.skip(f"transparent huge pages are '{_thp_mode()}' here, not 'madvise': numpy's switch changes nothing")
    asked = _printed(HUGE)
    if asked == 0:
        pytest.skip("the kernel gave numpy no huge page even when asked (none free)")
    assert asked >= 100_000  # most of the 400 MB, in 2 MB pages
    assert _printed(SMALL + HUGE) == 0
    assert _printed(SMALL + CHILD.format(loop=HUGE)) == 0  # a worker: told through the environment


def test_an_operator_may_keep_numpys_huge_pages():
    code = "from contimg.childjobs.memory import numpy_small_pages; print(numpy_small_pages())"
    assert _run(code, NUMPY_MADVISE_HUGEPAGE="1").split() == ["False"]
    assert _run("import numpy\n" + code).split() == ["False"]  # too late: numpy read the switch at its import
    assert _run(code).split() == ["True"]
