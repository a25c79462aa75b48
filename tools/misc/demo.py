"""End-to-end demo on the embedded synthetic data (README command 1).

Generates the data, trains a teacher, trains the same student without
distillation, with FRS and with TID on the same schedule, evaluates each with
COCO mAP (pycocotools) and prints a table. Finished runs are reused (delete work_dirs/demo to start over).

    python tools/demo.py [--work-dir work_dirs/demo] [--seed 0]
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

RUNS = [  # name, config, needs teacher
    ('teacher', 'configs/retinanet/retinanet_r18w48_synthetic.py', False),
    ('student', 'configs/retinanet/retinanet_r18w32_synthetic.py', False),
    ('student + FRS', 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py', True),
    ('student + TID', 'configs/tid/tid_retina_r18w48_r18w32_synthetic.py', True),
]
METRICS = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l']
#: the box metric each evaluator logs: CocoMetric's mAP, VOCMetric's AP at IoU 0.5
MAIN_KEYS = ('coco/bbox_mAP', 'pascal_voc/AP50')


def main_key(rec: dict):
    """The headline box metric of a logged evaluation (see MAIN_KEYS), or None."""
    return next((k for k in MAIN_KEYS if k in rec), None)


def eval_records(work_dir: str) -> list:
    """Every evaluation (COCO or VOC) written by mmengine's LocalVisBackend in ``work_dir``."""
    out = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            out += [rec for rec in map(json.loads, f) if main_key(rec)]
    return out


def last_metrics(work_dir: str) -> dict:
    """The last evaluation in ``work_dir`` ({} when none)."""
    records = eval_records(work_dir)
    return records[-1] if records else {}


def final_checkpoint(work_dir: str):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def train(cfg: str, work_dir: str, seed: int, extra=()) -> float:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir', work_dir,
           '--cfg-options', f'randomness.seed={seed}', *extra]
    print('$', ' '.join(cmd), flush=True)
    start = time.time()
    with open(osp.join(work_dir, 'train_stdout.log'), 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f'training failed, see {work_dir}/train_stdout.log')
    return time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data', default='data/synthetic')
    parser.add_argument('--teacher-ckpt', default=None,
                        help='reuse this teacher checkpoint instead of training one '
                             '(e.g. to repeat the students over seeds)')
    args = parser.parse_args()
    os.chdir(ROOT)
    t0 = time.time()
    from mmkd_det.datasets.synthetic import generate_synthetic_dataset
    generate_synthetic_dataset(args.data, num_train=800, num_val=200, img_size=128, seed=0)
    rows = []
    teacher_ckpt = None
    for name, cfg, needs_teacher in RUNS:
        if name == 'teacher' and args.teacher_ckpt:
            teacher_ckpt = args.teacher_ckpt
            continue
        wd = osp.join(args.work_dir, name.replace(' + ', '_').replace(' ', '_').lower())
        os.makedirs(wd, exist_ok=True)
        extra = ['model.teacher_ckpt=' + teacher_ckpt] if needs_teacher else []
        secs_file = osp.join(wd, 'train_seconds.txt')
        if not (final_checkpoint(wd) and last_metrics(wd)):
            with open(secs_file, 'w') as f:
                f.write(str(train(cfg, wd, args.seed, extra)))
        # a reused run reports the time it took when it was trained (nan if unknown)
        secs = float('nan')
        if osp.isfile(secs_file):
            with open(secs_file) as f:
                secs = float(f.read())
        metrics = last_metrics(wd)
        if name == 'teacher':
            teacher_ckpt = final_checkpoint(wd)
        rows.append((name, cfg, metrics, secs))
    base = next(m for n, _, m, _ in rows if n == 'student').get('coco/bbox_mAP', 0.0)
    lines = ['| model | config | mAP | AP50 | AP75 | APs | APm | APl | gain vs student | train s |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name, cfg, m, secs in rows:
        vals = ' | '.join(f'{100 * m.get("coco/" + k, float("nan")):.1f}' for k in METRICS)
        gain = f'{100 * (m.get("coco/bbox_mAP", 0) - base):+.1f}' if name != 'teacher' else ''
        lines.append(f'| {name} | `{cfg}` | {vals} | {gain} | {secs:.0f} |')
    table = '\n'.join(lines)
    print('\n' + table + f'\n\ntotal wall time: {time.time() - t0:.0f} s (seed {args.seed})')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump([dict(name=n, config=c, metrics=m, train_seconds=s) for n, c, m, s in rows],
                  f, indent=2)


if __name__ == '__main__':
    main()
