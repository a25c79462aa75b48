"""Gradient norm of each loss term on the student's parameters, for a few batches.

Prints, averaged over ``--batches`` training batches, the value of the task
loss and of every distillation term and the norm of its gradient on the
student's trainable parameters, and that norm over the task loss's, so loss
weights can be compared with the task loss (mmkd_det/analysis/grad_norms.py).

    python tools/analysis_tools/grad_norms.py configs/skd/skd_retina_r18w48_r18w32_synthetic.py \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth \\
        --checkpoint work_dirs/benchmark/SKD/seed0/epoch_5.pth --batches 3
"""
import sys

from mmkd_det.analysis.grad_norms import grad_norms, grad_norms_table
from mmkd_det.apis import add_distiller_config_args, add_json_arg, doc_parser, write_json


def parse_args():
    p = doc_parser(__doc__)
    add_distiller_config_args(p)
    p.add_argument(
        '--checkpoint',
        help='a Distiller checkpoint of a run (default: the '
        'freshly initialised student)')
    p.add_argument('--batches', type=int, default=3)
    add_json_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    try:
        terms = grad_norms(args.config, args.teacher_ckpt, args.checkpoint, args.batches,
                           args.cfg_options)
    except ValueError as err:
        sys.exit(str(err))
    print(grad_norms_table(terms))
    result = dict(config=args.config, checkpoint=args.checkpoint, batches=args.batches, terms=terms)
    write_json(result, args.json)


if __name__ == '__main__':
    main()
