"""Every module a Distiller can record, with its output shapes and strides.

Builds the detector(s) of CONFIG with random weights (no checkpoint is loaded: a
Distiller config runs before its teacher is trained), runs a zero image through
backbone, neck and dense heads in eval mode, and prints one row per module: its
type, output shapes per level (CxHxW), strides and the recorder spec that
captures it (or why none can). For a Distiller config it then compares the
student's and the teacher's neck levels and suggests the options that pair them
(adapter, resize_student, level selection) (mmkd_det/analysis/recordable.py).

    python tools/analysis_tools/print_records.py configs/retinanet/retinanet_r18w32_synthetic.py
    python tools/analysis_tools/print_records.py \\
        configs/recipe/pkd_retina_r18w48_r18w32_mydata.py --depth 1
    python tools/analysis_tools/print_records.py configs/frs/frs_retina_r101_r50.py \\
        --role teacher --filter 'neck|bbox_head$' --size 512 512
"""
import sys

from mmkd_det.analysis.recordable import ROLES, records_report
from mmkd_det.apis import add_cfg_options_arg, doc_parser, load_config


def parse_args():
    p = doc_parser(__doc__)
    p.add_argument('config', help='a Distiller config or a plain mmdet detector config')
    p.add_argument(
        '--role',
        choices=ROLES,
        default='both',
        help='which detectors of a Distiller config (default both)')
    p.add_argument(
        '--size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='zero image size (default: the test pipeline\'s Resize scale, padded as the '
        'data preprocessor pads; 256 256 if it has none)')
    p.add_argument(
        '--depth',
        type=int,
        default=3,
        help='show modules at most this many dotted parts deep (neck: 1; default 3; 0: all)')
    p.add_argument('--filter', help='show modules whose name matches this regular expression')
    p.add_argument(
        '--overlay',
        nargs='+',
        default=[],
        metavar='FILE',
        help='config files merged over the config in order, before --cfg-options')
    add_cfg_options_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    try:
        cfg = load_config(args.config, args.cfg_options, overlays=args.overlay)
        print(records_report(cfg, args.role, args.size, args.depth or None, args.filter), end='')
    except (ValueError, KeyError, FileNotFoundError) as err:
        sys.exit(f'print_records: {err}')


if __name__ == '__main__':
    main()
