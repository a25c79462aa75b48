"""Memory soak: train a distillation config for many iterations, check resident memory stays flat.

Trains CONFIG through mmengine's Runner for --iters iterations in this process
(no data workers, no validation), samples the resident memory (VmRSS) every
--interval iterations and fits its slope after --warmup iterations
(mmkd_det/analysis/soak.py). Without --data-root, --num-images synthetic images
are generated in the work dir; without --teacher-ckpt, the teacher's initial
weights serve as its checkpoint. Exit code 1 when the slope exceeds
--threshold MiB per 100 iterations.

    python tools/analysis_tools/soak.py configs/frs/frs_retina_r18w48_r18w32_synthetic.py \\
        --iters 1000 --json docs/measurements/soak/frs_retina_synthetic.json \\
        --md docs/measurements/soak/frs_retina_synthetic.md
"""
import os
import sys
import tempfile

import torch

from mmkd_det.analysis.soak import run_soak, soak_table, verdict
from mmkd_det.apis import (PreflightError, add_distiller_config_args, add_json_arg,
                           add_keep_heap_arg, apply_keep_heap, doc_parser, write_json)


def parse_args():
    p = doc_parser(__doc__)
    add_distiller_config_args(p)
    p.add_argument('--iters', type=int, default=1000, help='iterations to train')
    p.add_argument('--interval', type=int, default=10, help='iterations between memory samples')
    p.add_argument('--warmup', type=int, default=200, help='iterations left out of the slope')
    p.add_argument(
        '--threshold',
        type=float,
        default=1.0,
        help='largest slope that passes, MiB per 100 iterations')
    p.add_argument('--data-root', help='train data (default: generated synthetic images)')
    p.add_argument('--num-images', type=int, default=16, help='synthetic train images to generate')
    p.add_argument('--work-dir', help='Runner work dir (default: a temporary folder)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--md', help='also write the markdown table to this file')
    add_keep_heap_arg(p)
    add_json_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    apply_keep_heap(args.keep_heap)
    torch.set_num_threads(args.threads)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='mmkd_soak_')
    try:
        record = run_soak(
            args.config,
            work_dir,
            iters=args.iters,
            interval=args.interval,
            warmup=args.warmup,
            threshold=args.threshold,
            data_root=args.data_root,
            teacher_ckpt=args.teacher_ckpt,
            num_images=args.num_images,
            cfg_options=args.cfg_options)
    except (ValueError, PreflightError) as err:
        sys.exit(f'[mmkd_det] {err}')
    record['command'] = ' '.join(['python'] + sys.argv)
    record['keep_heap'] = args.keep_heap
    table = soak_table(record)
    print(table)
    print(verdict(record))
    write_json(record, args.json)
    if args.md:
        os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
        with open(args.md, 'w') as f:
            f.write(table + '\n' + verdict(record) + '\n')
    sys.exit(0 if record['passed'] else 1)


if __name__ == '__main__':
    main()
