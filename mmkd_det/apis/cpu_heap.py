"""Keep freed CPU memory in the process (glibc), so that training steps stop
faulting in fresh pages every iteration.

glibc hands blocks above its mmap threshold (at most 32 MiB by default) back to
the kernel on ``free``; the next step's tensors of that size then start on fresh
pages, each zeroed on its first touch (a minor page fault). A full-size
RetinaNet step allocates gigabytes of such tensors. On the 2-core CPU VM of this
project a fault measured about 4 us: the R50 student step at 1333x800 (batch 2)
took 1.39 M faults and 22.5 s with glibc's defaults, 0.22 M faults and 17.4 s
with the heap kept (docs/benchmark.md). PyTorch's CUDA caching allocator does
the same on a GPU.

The heap settles after a few steps (a freed block may not fit the next request
of its size until the holes around it are there too). The price: the process's
resident memory no longer shrinks between steps; it stays at the largest
step's peak.

Trimming is disabled outright (``M_TRIM_THRESHOLD`` = -1, which glibc reads as
the largest ``size_t``; ``man mallopt``). The largest ``int`` (2 GiB), used
until 2026-12-02, was not enough at full size: the end of a distillation step
frees more than 2 GiB at the top of the heap, glibc handed it back, and the
next step faulted it in again (KD on RetinaNet R101 -> R50: 85-520 k faults
per distill step after warm-up, 0-72 k with -1; docs/benchmark.md).
"""
import ctypes
import ctypes.util

#: glibc ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: ``M_TRIM_THRESHOLD`` value that disables trimming (``(size_t) -1``)
NEVER_TRIM = -1


def keep_freed_memory(mmap_threshold: int = 1 << 30) -> bool:
    """Make glibc serve blocks below ``mmap_threshold`` bytes from its heap and
    never trim the heap. Call it after importing torch. Returns False, changing
    nothing, where the C library has no ``mallopt`` (not glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, min(int(mmap_threshold), 1 << 30))) and \
        bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
