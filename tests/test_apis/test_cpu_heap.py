"""keep_freed_memory: once the heap has settled, a freed 64 MiB tensor's pages
are reused by the next one, where glibc's defaults fault all of them in again."""
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = '''
import resource, sys, torch
from mmkd_det.apis import keep_freed_memory
if sys.argv[1] == 'keep':
    assert keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
out = []
for _ in range(16):                 # a 64 MiB tensor made, touched and freed, as in a loop
    start = faults()
    torch.ones(2 ** 24).sum()
    out.append(faults() - start)
print(*out)
'''
PAGES = 2 ** 26 // 4096            # the tensor's pages


def faults_per_iteration(mode: str):
    proc = subprocess.run([sys.executable, '-c', SCRIPT, mode], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [int(x) for x in proc.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc and getrusage faults')
def test_kept_heap_reuses_freed_pages():
    # defaults: the block is above glibc's mmap threshold, unmapped on free, and
    # every iteration faults all its pages in again
    assert min(faults_per_iteration('default')) > 0.9 * PAGES
    # kept: a few iterations to settle (measured: at most 5), then no new pages
    assert max(faults_per_iteration('keep')[8:]) < 0.05 * PAGES
