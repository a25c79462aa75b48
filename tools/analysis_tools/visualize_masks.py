"""Per-FPN-level heatmaps of a distillation config's masks over input images.

For every loss that exposes ``visual_maps`` (TID: key and weak areas,
information value, final M; FRS: feature richness) one PNG per validation image
and loss, ``<out>/<loss>_img<i>.png``: rows = maps, columns = FPN levels
(finest left, as the TID paper's Fig. 4) (mmkd_det/analysis/masks.py).

    python tools/analysis_tools/visualize_masks.py \\
        configs/tid/tid_retina_r18w48_r18w32_synthetic.py \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth \\
        --student-ckpt work_dirs/benchmark/TID/seed0/epoch_5.pth --out docs/images/tid
"""
import sys

from mmkd_det.analysis.masks import save_mask_figures
from mmkd_det.apis import add_distiller_config_args, doc_parser


def parse_args():
    p = doc_parser(__doc__)
    add_distiller_config_args(p)
    p.add_argument(
        '--student-ckpt',
        help='Distiller or student checkpoint of a run; '
        'default: the untrained student')
    p.add_argument('--num-images', type=int, default=4)
    p.add_argument('--out', default='work_dirs/masks')
    return p.parse_args()


def main():
    args = parse_args()
    try:
        written = save_mask_figures(args.config, args.out, args.teacher_ckpt, args.student_ckpt,
                                    args.num_images, args.cfg_options)
    except ValueError as err:
        sys.exit(str(err))
    for path in written:
        print('wrote', path)


if __name__ == '__main__':
    main()
