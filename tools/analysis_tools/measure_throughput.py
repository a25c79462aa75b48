"""Images/s and peak memory of a full-size training step: plain student vs distilled.

Random weights (nothing is downloaded) on a batch of ``--batch`` random images
of ``--size`` with 7 random boxes each; the steps and figures are described in
mmkd_det/analysis/throughput.py. Paths are relative to the current directory
(the default config: run from the repository root).

    python tools/analysis_tools/measure_throughput.py --device cuda   # the GPU check of issue 6
    python tools/analysis_tools/measure_throughput.py --device cuda --amp   # float16 autocast
    # several configs, one table: <out>.json and <out>.md (tools/misc/gpu_throughput.sh)
    python tools/analysis_tools/measure_throughput.py configs/frs/frs_retina_r101_r50.py \
        configs/pkd/pkd_retina_r101_r50.py --device cuda --amp --out work_dirs/gpu_amp
    python tools/analysis_tools/measure_throughput.py configs/pkd/pkd_retina_r101_r50.py \\
        --device cuda
    # repeated runs of the same configs, one table of median (min-max)
    python tools/analysis_tools/measure_throughput.py --repeats run1.json run2.json run3.json \\
        --out work_dirs/gpu_repeats
    # the teacher forward alone, NCHW against channels-last (teacher_channels_last)
    python tools/analysis_tools/measure_throughput.py --device cpu --teacher-layouts \\
        --iters 6 --warmup 1
    python tools/analysis_tools/measure_throughput.py \\
        configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py --device cpu --teacher-layouts \\
        --batch 8 --size 128 128 --iters 40
"""
import gc
import sys

import torch

from mmkd_det.analysis.throughput import (full_size_step, measure_throughput, read_throughput_runs,
                                          teacher_layouts, teacher_layouts_summary,
                                          throughput_repeats_table, throughput_summary,
                                          throughput_table)
from mmkd_det.apis import (add_distiller_options_arg, add_image_size_arg, add_json_arg,
                           add_keep_heap_arg, apply_keep_heap, doc_parser, write_json)


def parse_args():
    p = doc_parser(__doc__)
    p.add_argument(
        'config',
        nargs='*',
        default=['configs/frs/frs_retina_r101_r50.py'],
        help='Distiller '
        'config(s); default configs/frs/frs_retina_r101_r50.py')
    p.add_argument('--device', default='cuda')
    p.add_argument('--batch', type=int, default=2)
    add_image_size_arg(p)
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument(
        '--amp',
        action='store_true',
        help='run every step under autocast, as tools/train.py --amp (float16 and a '
        'gradient scaler on CUDA, bfloat16 on CPU)')
    add_json_arg(p)
    add_distiller_options_arg(p, 'inplace_activations=disable')
    add_keep_heap_arg(p)
    p.add_argument('--out', help='stem of <out>.json (every result) and <out>.md (one table)')
    p.add_argument(
        '--teacher-layouts',
        action='store_true',
        help='time only the Distiller\'s teacher forward, NCHW and channels-last '
        'input interleaved (the teacher_channels_last option)')
    p.add_argument(
        '--repeats',
        nargs='+',
        metavar='JSON',
        help='measure nothing: read the <out>.json files of repeated runs and write '
        'one table of median (min-max) per config and precision to <out>.md')
    return p.parse_args()


def main():
    args = parse_args()
    if args.repeats:
        write_repeats(args.repeats, args.out)
        return
    apply_keep_heap(args.keep_heap)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device visible to torch; use --device cpu.')
    if len(args.config) > 1 and (args.json or args.teacher_layouts):
        sys.exit('--json and --teacher-layouts take one config; give --out STEM for several.')
    results = {}
    for config in args.config:
        try:
            step = full_size_step(
                config, args.device, args.batch, args.size, args.distiller_options, amp=args.amp)
        except ValueError as err:
            sys.exit(str(err))
        if args.teacher_layouts:
            res = teacher_layouts(step, args.iters, args.warmup, config, args.device)
            print(teacher_layouts_summary(res))
        else:
            res = measure_throughput(step, args.iters, args.warmup, config, args.device,
                                     args.distiller_options, args.keep_heap)
            print(f'== {config}\n{throughput_summary(res)}', flush=True)
        results[config] = res
        # free this config's model before the next one's peak memory is measured
        step.release()
        del step
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    write_json(results[args.config[0]], args.json)
    if args.out:
        write_json(results, args.out + '.json')
        with open(args.out + '.md', 'w') as f:
            f.write(throughput_table(results) + '\n')


def write_repeats(paths, out):
    if not out:
        sys.exit('--repeats needs --out STEM: the table goes to <STEM>.md.')
    try:
        table = throughput_repeats_table(read_throughput_runs(paths))
    except ValueError as err:
        sys.exit(f'--repeats {err}')
    with open(out + '.md', 'w') as f:
        f.write(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
