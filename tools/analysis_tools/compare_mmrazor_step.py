"""Time one PKD distillation step: mmkd_det's Distiller against mmrazor 1.0.0's
``SingleTeacherDistill`` on the same models, weights and batch.

``--pair synthetic``: the synthetic R18-w48 RetinaNet as student and teacher
(``--teacher-ckpt`` its weights); ``--pair full``: mmdet's RetinaNet R101 ->
R50 at 1333x800 from random weights. Details in
mmkd_det/analysis/mmrazor_step.py. Run it from the repository root (the
synthetic pair's config and the default --teacher-ckpt are relative to it).

    python tools/analysis_tools/compare_mmrazor_step.py \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth
    python tools/analysis_tools/compare_mmrazor_step.py --pair full --iters 3 --warmup 1
"""
import torch

from mmkd_det.analysis.mmrazor_step import compare_pkd_step, compare_summary
from mmkd_det.apis import (add_cfg_options_arg, add_distiller_options_arg, add_image_size_arg,
                           add_json_arg, add_keep_heap_arg, apply_keep_heap, doc_parser, write_json)


def parse_args():
    p = doc_parser(__doc__)
    p.add_argument(
        '--pair',
        choices=['synthetic', 'full'],
        default='synthetic',
        help='synthetic: the R18-w48 RetinaNet as student and teacher; full: '
        'RetinaNet R101 -> R50 at 1333x800')
    p.add_argument('--batch', type=int, default=2, help='--pair full: images per batch')
    add_image_size_arg(p, '--pair full: image size')
    p.add_argument(
        '--breakdown',
        action='store_true',
        help='also time the parts: each student step alone and each teacher pass')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    p.add_argument(
        '--teacher-ckpt',
        default='work_dirs/demo/teacher/epoch_10.pth',
        help='--pair synthetic: the R18-w48 RetinaNet weights')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--loss-weight', type=float, default=10.0)
    add_json_arg(p)
    add_keep_heap_arg(p)
    add_cfg_options_arg(p, 'overrides of the RetinaNet config (e.g. the data root)', default={})
    add_distiller_options_arg(p, 'fuse_teacher_bn=False')
    return p.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    apply_keep_heap(args.keep_heap)
    res = compare_pkd_step(args.pair, args.teacher_ckpt, args.batch, args.size, args.breakdown,
                           args.iters, args.warmup, args.loss_weight, args.cfg_options,
                           args.distiller_options, args.keep_heap)
    print(compare_summary(res))
    write_json(res, args.json)


if __name__ == '__main__':
    main()
