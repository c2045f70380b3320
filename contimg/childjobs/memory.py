"""A child job's memory: glibc told to keep what it frees, numpy told not to ask for huge pages.

A child job allocates the same arrays again and again (the image job: ~100 MB of visibilities, models and
temporaries per subband in each averaging worker, the gridder's planes per output channel). With glibc's
defaults every block above 32 MB is mapped fresh from the kernel and returned on free, so each one is paid
again in page faults, which are dear on a virtual machine. Told to keep them (blocks up to 1 GiB from the
heap, the heap not trimmed below 1 GiB free), the process reuses its pages. The full-size image job: apply
+ image 31.3-32.0 s against 32.8-35.2 s, alternating runs; the first images by ducc0 2.6-2.8 s against
3.8-4.3 s; peak RSS 1.07-1.09 GB against 0.95-0.97 (docs/benchmarks.md). The convert job was unchanged, and
the calibrate job 1.3 s slower with 7 % more memory, so only the image job asks for it.

NumPy asks the kernel for transparent huge pages (madvise) for every array of 4 MB or more. On this virtual
machine the first touch of fresh huge pages is the dear part: 400 MB took 0.07-2.8 s in huge pages against
0.13-0.14 s in 4 kB pages, and each averaging worker's first subband cost 3.0 CPU s against 0.8 s for the
next ones. With NumPy's own switch off (``NUMPY_MADVISE_HUGEPAGE=0``, read when numpy is imported) the
full-size image job's apply + image took 25.8-28.7 s against 27.2-30.0 s in six alternating pairs (apply
8.4-10.3 s against 9.8-12.1 s; docs/benchmarks.md). The convert and calibrate jobs were unchanged. A
machine where huge pages pay (bare metal, say) sets ``NUMPY_MADVISE_HUGEPAGE=1`` in the job's environment:
an operator's value is kept. Where the kernel gives huge pages to every mapping (``always``), not only to
those that ask, this switch changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["KEEP_FREED", "NUMPY_HUGEPAGE_SWITCH", "keep_freed_memory", "numpy_small_pages"]

KEEP_BYTES = 1 << 30
# as environment variables, for the processes this one starts (averaging workers, WSClean): glibc reads them at
# start-up; as mallopt parameters (glibc's malloc.h), for this process
KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(KEEP_BYTES), "MALLOC_TRIM_THRESHOLD_": str(KEEP_BYTES)}
_MALLOPT_PARAM = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}
NUMPY_HUGEPAGE_SWITCH = "NUMPY_MADVISE_HUGEPAGE"  # numpy's own (numpy.org, "Global state"): "0" is off


def keep_freed_memory() -> bool:
    """Keep freed memory in this process (glibc's mallopt) and in the processes it starts (their environment).

    A setting already in the environment (an operator's) is left as it is: glibc read it when this process
    started. Returns whether this process's allocator took ours: False where the C library is not glibc,
    which then runs as before.
    """
    ours = [name for name in KEEP_FREED if name not in os.environ]
    os.environ.update({name: KEEP_FREED[name] for name in ours})
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(_MALLOPT_PARAM[name], KEEP_BYTES) == 1 for name in ours)


def numpy_small_pages() -> bool:
    """NumPy without huge pages in this process and the processes it starts (their environment).

    An operator's ``NUMPY_MADVISE_HUGEPAGE`` is left as it is. NumPy reads the switch when it is imported, so
    call this first. Returns whether numpy in this process will use small pages: False when numpy was
    imported already or the operator asked for huge pages.
    """
    return os.environ.setdefault(NUMPY_HUGEPAGE_SWITCH, "0") == "0" and "numpy" not in sys.modules
