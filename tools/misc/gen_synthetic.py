"""Generate the embedded synthetic detection dataset (COCO + Pascal VOC layouts).

Example:
    python tools/misc/gen_synthetic.py --out data/synthetic --num-train 800 \
        --num-val 200 --img-size 128 --seed 0

The benchmark tiers' datasets by name (``quick``: the command above; ``standard``:
3000 + 500 images of 192 px in data/synthetic_standard):
    python tools/misc/gen_synthetic.py --preset standard

The command is idempotent: if ``--out`` already holds a complete dataset with the
same parameters, it only prints the stored statistics (use ``--force`` to
regenerate).
"""
import argparse

from mmkd_det.datasets.synthetic import (SYNTHETIC_PRESETS, generate_preset,
                                         generate_synthetic_dataset)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset',
        choices=sorted(SYNTHETIC_PRESETS),
        help='a benchmark tier\'s dataset (its folder and parameters; the other options '
        'except --force are ignored)')
    parser.add_argument('--out', default='data/synthetic', help='output folder')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--formats', nargs='+', default=['coco', 'voc'], choices=['coco', 'voc'])
    parser.add_argument('--min-objects', type=int, default=1)
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument(
        '--distractor-prob',
        type=float,
        default=None,
        help='probability that an image has distractors')
    parser.add_argument(
        '--empty-prob',
        type=float,
        default=None,
        help='probability that an image has no annotated object')
    parser.add_argument(
        '--force', action='store_true', help='regenerate even if a matching dataset exists')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    kwargs = dict(
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        seed=args.seed,
        formats=args.formats,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        force=args.force)
    if args.distractor_prob is not None:
        kwargs['distractor_prob'] = args.distractor_prob
    if args.empty_prob is not None:
        kwargs['empty_prob'] = args.empty_prob
    if args.preset:
        info = generate_preset(args.preset, force=args.force)
    else:
        info = generate_synthetic_dataset(args.out, **kwargs)

    if info['skipped']:
        print(f'{info["out_dir"]}: complete dataset with these parameters found, '
              f'nothing regenerated ({info["elapsed_s"]:.3f} s)')
    else:
        total = info['params']['num_train'] + info['params']['num_val']
        print(f'{info["out_dir"]}: wrote {total} images in {info["elapsed_s"]:.2f} s '
              f'({info["images_per_s"]:.1f} images/s)')
    for split, st in info['stats'].items():
        print(f'[{split}] images={st["images"]} empty_images={st["empty_images"]} '
              f'boxes={st["boxes"]} distractors={st["distractors"]} '
              f'(in {st["images_with_distractors"]} images)')
        print('    per size : ' + ' '.join(f'{k}={v}' for k, v in st['per_size'].items()))
        print('    per class: ' + ' '.join(f'{k}={v}' for k, v in st['per_class'].items()))
        print('    distractors: ' + ' '.join(f'{k}={v}' for k, v in st['per_distractor'].items()))
    for split, path in info['coco'].items():
        print(f'COCO {split}: {path}')
    if info['voc_root']:
        print(f'VOC root: {info["voc_root"]}')


if __name__ == '__main__':
    main()
