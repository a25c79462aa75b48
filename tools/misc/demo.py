"""End-to-end demo on the embedded synthetic data (README command 1).

Generates the data, trains a teacher, trains the same student without
distillation, with FRS and with TID on the same schedule, evaluates each with
COCO mAP (pycocotools) and prints a table (``<work-dir>/results.md`` and
``results.json``). Finished runs are reused (delete work_dirs/demo to start
over). Run it from the repository root.

    python tools/misc/demo.py [--work-dir work_dirs/demo] [--seed 0]
    # students over seeds with the first teacher, then their mean ± std
    python tools/misc/demo.py --work-dir work_dirs/demo_seed1 --seed 1 \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth
    python tools/misc/demo.py --summarize work_dirs/demo work_dirs/demo_seed1
"""
import os.path as osp
import sys
import time

from mmkd_det.analysis.demo import demo_table, run_demo, seeds_table, write_demo
from mmkd_det.apis import doc_parser

TRAIN = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'train.py')


def parse_args():
    parser = doc_parser(__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data', default='data/synthetic')
    parser.add_argument(
        '--teacher-ckpt',
        default=None,
        help='reuse this teacher checkpoint instead of training one '
        '(e.g. to repeat the students over seeds)')
    parser.add_argument(
        '--summarize',
        nargs='+',
        metavar='WORK_DIR',
        help='train nothing: mean ± std of the students over these demo work '
        'dirs (one seed each)')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.summarize:
        print(seeds_table(args.summarize))
        return
    t0 = time.time()
    try:
        rows = run_demo(args.work_dir, TRAIN, args.seed, args.data, args.teacher_ckpt)
    except RuntimeError as err:
        sys.exit(str(err))
    print('\n' + demo_table(rows) +
          f'\n\ntotal wall time: {time.time() - t0:.0f} s (seed {args.seed})')
    write_demo(rows, args.work_dir)


if __name__ == '__main__':
    main()
