"""Memory of Structured KD's non-local distillation at full COCO resolution.

For each non-local setting, per FPN level, the size of one relation matrix
(computed) and the measured peak memory of one SKDLoss forward + backward on
random FPN features of that size (256 channels, P2-P6): CUDA's
max_memory_allocated on a GPU, the growth of the peak RSS on CPU, each setting
in a fresh process (mmkd_det/analysis/skd_memory.py). Settings whose relation
matrices exceed ``--max-gb`` are reported but not run.

    python tools/analysis_tools/measure_skd_memory.py          # authors' strides 8/4/2/2/2
    python tools/analysis_tools/measure_skd_memory.py --json docs/measurements/skd_memory.json
"""
import sys

from mmkd_det.analysis.skd_memory import level_shapes, measure_settings
from mmkd_det.apis import add_json_arg, doc_parser, write_json


def parse_args():
    p = doc_parser(__doc__)
    p.add_argument('--height', type=int, default=800)
    p.add_argument('--width', type=int, default=1333)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument(
        '--mode', default='embedded_gaussian', help='non-local pairwise function (Table IX)')
    p.add_argument('--device', default='cpu')
    p.add_argument(
        '--max-gb',
        type=float,
        default=8.0,
        help='skip settings whose relation matrices exceed this')
    add_json_arg(p)
    return p.parse_args()


def main():
    args = parse_args()
    shapes = level_shapes(args.height, args.width)
    print(f'{args.width} x {args.height}, batch {args.batch}, 256 channels, levels '
          f'{shapes}, mode {args.mode}, device {args.device}')
    try:
        results = measure_settings(args.height, args.width, args.batch, args.mode, args.device,
                                   args.max_gb)
    except RuntimeError as err:
        sys.exit(str(err))
    setting = dict(height=args.height, width=args.width, batch=args.batch, mode=args.mode)
    write_json(dict(setting, device=args.device, levels=shapes, results=results), args.json)


if __name__ == '__main__':
    main()
