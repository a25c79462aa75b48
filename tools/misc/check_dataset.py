"""Check the datasets of a config before training: annotation files, classes, images.

Example:
    python tools/misc/check_dataset.py configs/frs/frs_retina_r18w48_r18w32_synthetic.py
    python tools/misc/check_dataset.py CONFIG --full   # decode every image too

Every annotation file of the train/val/test dataloaders and of the val/test
evaluators is parsed; the classes are matched against the model's ``num_classes``;
the summary lists, per file, the boxes mmdet drops or ignores (and why) and the
images without a kept box. Without ``--full`` only a sample of images is checked
(``tools/train.py`` runs that cheap check itself); with it every image is read and
decoded (a progress bar shows the way). The exit status is 1 when a problem is found.
See :mod:`mmkd_det.apis.dataset_check` for the rules.
"""
import sys

import mmkd_det  # noqa: F401  (registries)
from mmkd_det.apis import (PreflightError, add_cfg_options_arg, doc_parser, load_config,
                           run_dataset_check)


def parse_args(argv=None):
    parser = doc_parser(__doc__)
    parser.add_argument('config', help='a training or test config')
    parser.add_argument(
        '--full', action='store_true', help='check and decode every image (slow on large sets)')
    add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    try:
        run_dataset_check(cfg, full=args.full)
    except PreflightError as err:
        sys.exit(f'[mmkd_det] {err}')
    print('[mmkd_det] dataset check passed')


if __name__ == '__main__':
    main()
