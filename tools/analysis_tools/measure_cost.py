"""Time and size a distillation training step against its parts, on one fixed batch.

Steps (``student``, ``teacher``, ``distill``, ``loss_alone``), ratios, the floor,
the Distiller's overhead and the memory measurement are defined in
mmkd_det/analysis/cost.py. Targets: time distill / (student + teacher) <= 1.05,
memory <= 1.10.

    python tools/analysis_tools/measure_cost.py \\
        configs/tid/tid_retina_r18w48_r18w32_synthetic.py \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth
    # every distillation run of a benchmark preset, one table
    python tools/analysis_tools/measure_cost.py --preset review \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth --out docs/measurements/cost_review
"""
import os.path as osp
import sys

from mmkd_det.analysis.benchmark import PRESETS, RUNS, needs_teacher
from mmkd_det.analysis.cost import measure, summary, table
from mmkd_det.apis import add_json_arg, add_teacher_ckpt_arg, doc_parser, write_json


def parse_args():
    p = doc_parser(__doc__)
    p.add_argument('config', nargs='*', help='Distiller config(s)')
    p.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        help='every Distiller run of this benchmark preset (from the repository root)')
    add_teacher_ckpt_arg(p)
    p.add_argument('--iters', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--no-memory', action='store_true', help='time only')
    add_json_arg(p, 'one config: its result as JSON')
    p.add_argument('--out', help='stem of <out>.json and <out>.md (all configs)')
    p.add_argument(
        '--cfg-options', nargs='+', default=[], help='key=value overrides, as in tools/train.py')
    return p, p.parse_args()


def main():
    p, args = parse_args()
    runs = {}
    if args.preset:
        for name in PRESETS[args.preset]:
            spec = RUNS[name]
            if needs_teacher(spec.config):
                runs[name] = (spec.config, list(spec.cfg_options))
    runs.update({osp.basename(c)[:-3]: (c, []) for c in args.config})
    if not runs:
        p.error('give a Distiller config or --preset')
    results = {}
    for name, (config, options) in runs.items():
        try:
            res = measure(
                config,
                options + args.cfg_options,
                args.teacher_ckpt,
                args.iters,
                args.warmup,
                memory=not args.no_memory)
        except (ValueError, RuntimeError) as err:
            sys.exit(str(err))
        results[name] = res
        print(f'== {name} ({config})\n{summary(res)}', flush=True)
    write_json(next(iter(results.values())) if len(results) == 1 else results, args.json)
    if args.out:
        write_json(results, args.out + '.json')
        with open(args.out + '.md', 'w') as f:
            f.write(table(results) + '\n')
    if len(results) > 1:
        print(table(results))


if __name__ == '__main__':
    main()
