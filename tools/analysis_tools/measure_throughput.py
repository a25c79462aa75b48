"""Images/s and peak memory of a full-size training step: plain student vs distilled.

Random weights (nothing is downloaded) on a batch of ``--batch`` random images
of ``--size`` with 7 random boxes each; the steps and figures are described in
mmkd_det/analysis/throughput.py. Paths are relative to the current directory
(the default config: run from the repository root).

    python tools/analysis_tools/measure_throughput.py --device cuda   # the GPU check of issue 6
    python tools/analysis_tools/measure_throughput.py configs/pkd/pkd_retina_r101_r50.py \\
        --device cuda
    # the teacher forward alone, NCHW against channels-last (teacher_channels_last)
    python tools/analysis_tools/measure_throughput.py --device cpu --teacher-layouts \\
        --iters 6 --warmup 1
    python tools/analysis_tools/measure_throughput.py \\
        configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py --device cpu --teacher-layouts \\
        --batch 8 --size 128 128 --iters 40
"""
import argparse
import json
import sys

import torch
from mmengine.config import DictAction

from mmkd_det.analysis.throughput import (full_size_step, measure_throughput, teacher_layouts,
                                          teacher_layouts_summary, throughput_summary)
from mmkd_det.apis import keep_freed_memory


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', default='configs/frs/frs_retina_r101_r50.py')
    p.add_argument('--device', default='cuda')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=[800, 1333],
        metavar=('H', 'W'),
        help='image size (default 1333x800)')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--json')
    p.add_argument(
        '--distiller-options',
        nargs='+',
        action=DictAction,
        default={},
        help='extra Distiller arguments, e.g. inplace_activations=disable')
    p.add_argument(
        '--keep-heap',
        action='store_true',
        help='keep freed memory in the process (mmkd_det.apis.keep_freed_memory)')
    p.add_argument(
        '--teacher-layouts',
        action='store_true',
        help='time only the Distiller\'s teacher forward, NCHW and channels-last '
        'input interleaved (the teacher_channels_last option)')
    return p.parse_args()


def main():
    args = parse_args()
    if args.keep_heap and not keep_freed_memory():
        sys.exit('--keep-heap: the C library has no mallopt (not glibc).')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device visible to torch; use --device cpu.')
    try:
        step = full_size_step(args.config, args.device, args.batch, args.size,
                              args.distiller_options)
    except ValueError as err:
        sys.exit(str(err))
    if args.teacher_layouts:
        res = teacher_layouts(step, args.iters, args.warmup, args.config, args.device)
        print(teacher_layouts_summary(res))
    else:
        res = measure_throughput(step, args.iters, args.warmup, args.config, args.device,
                                 args.distiller_options, args.keep_heap)
        print(throughput_summary(res))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
