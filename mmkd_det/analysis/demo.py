"""End-to-end demo on the embedded synthetic data (README command 1).

:func:`run_demo` generates the data, trains a teacher, trains the same student
without distillation, with FRS and with TID on the same schedule, evaluates
each with COCO mAP (pycocotools) and returns one row per model; finished runs
are reused (delete the work dir to start over). :func:`demo_table` is the
printed table, :func:`seeds_table` the mean ± std of the students over demo
runs of several seeds.

The command line is ``tools/misc/demo.py`` (``bash tools/demo.sh`` installs
what is missing first).
"""
import json
import os
import os.path as osp
import statistics as st
from typing import List, Optional, Sequence, Tuple

from .logs import METRICS, final_checkpoint, last_metrics, train_in_subprocess

RUNS = [  # name, config, needs teacher
    ('teacher', 'configs/retinanet/retinanet_r18w48_synthetic.py', False),
    ('student', 'configs/retinanet/retinanet_r18w32_synthetic.py', False),
    ('student + FRS', 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py', True),
    ('student + TID', 'configs/tid/tid_retina_r18w48_r18w32_synthetic.py', True),
]


def run_demo(work_dir: str,
             train_script: str,
             seed: int = 0,
             data: str = 'data/synthetic',
             teacher_ckpt: Optional[str] = None) -> List[Tuple[str, str, dict, float]]:
    """Train (or reuse) the demo's runs in ``<work_dir>/<model>``.

    Args:
        work_dir (str): the demo's work dir.
        train_script (str): path of ``tools/train.py``.
        seed (int): ``randomness.seed`` of every training.
        data (str): where the synthetic data is generated.
        teacher_ckpt (str, optional): reuse this teacher checkpoint instead of
            training one (e.g. to repeat the students over seeds).

    Returns:
        list[tuple]: ``(name, config, metrics, train seconds)`` per model; a
        reused run reports the time it took when it was trained (nan if unknown).

    Raises:
        RuntimeError: a training failed; the message names its log.
    """
    from mmkd_det.datasets.synthetic import generate_synthetic_dataset
    generate_synthetic_dataset(data, num_train=800, num_val=200, img_size=128, seed=0)
    rows = []
    for name, cfg, needs_teacher in RUNS:
        if name == 'teacher' and teacher_ckpt:
            continue
        wd = osp.join(work_dir, name.replace(' + ', '_').replace(' ', '_').lower())
        os.makedirs(wd, exist_ok=True)
        extra = ['model.teacher_ckpt=' + teacher_ckpt] if needs_teacher else []
        secs_file = osp.join(wd, 'train_seconds.txt')
        if not (final_checkpoint(wd) and last_metrics(wd)):
            secs = train_in_subprocess(train_script, cfg, wd, [f'randomness.seed={seed}', *extra])
            with open(secs_file, 'w') as f:
                f.write(str(secs))
        secs = float('nan')
        if osp.isfile(secs_file):
            with open(secs_file) as f:
                secs = float(f.read())
        if name == 'teacher':
            teacher_ckpt = final_checkpoint(wd)
        rows.append((name, cfg, last_metrics(wd), secs))
    return rows


def demo_table(rows: Sequence[Tuple[str, str, dict, float]]) -> str:
    """Markdown table of :func:`run_demo`'s rows: COCO AP, AP50, AP75, APs/m/l,
    gain over the student and training seconds."""
    base = next(m for n, _, m, _ in rows if n == 'student').get('coco/bbox_mAP', 0.0)
    lines = [
        '| model | config | mAP | AP50 | AP75 | APs | APm | APl | gain vs student | train s |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for name, cfg, m, secs in rows:
        vals = ' | '.join(f'{100 * m.get("coco/" + k, float("nan")):.1f}' for k in METRICS)
        gain = f'{100 * (m.get("coco/bbox_mAP", 0) - base):+.1f}' if name != 'teacher' else ''
        lines.append(f'| {name} | `{cfg}` | {vals} | {gain} | {secs:.0f} |')
    return '\n'.join(lines)


def write_demo(rows: Sequence[Tuple[str, str, dict, float]], work_dir: str) -> None:
    """``<work_dir>/results.md`` (:func:`demo_table`) and ``results.json``."""
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(demo_table(rows) + '\n')
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump([dict(name=n, config=c, metrics=m, train_seconds=s) for n, c, m, s in rows],
                  f,
                  indent=2)


def seeds_table(work_dirs: Sequence[str]) -> str:
    """Mean ± std of the students over the demo runs in ``work_dirs`` (one seed
    each, their ``results.json``), with each run's mAP gain over the student."""
    vals = {}
    for wd in work_dirs:
        with open(osp.join(wd, 'results.json')) as f:
            for run in json.load(f):
                if run['name'] != 'teacher':
                    vals.setdefault(run['name'],
                                    []).append([100 * run['metrics']['coco/' + k] for k in METRICS])
    lines = [
        '| model | mAP | AP50 | AP75 | APs | APm | APl | per-run mAP |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for name, rows in vals.items():
        cells = ' | '.join(f'{st.mean(c):.1f} ± {st.stdev(c) if len(c) > 1 else 0:.1f}'
                           for c in zip(*rows))
        lines.append(f'| {name} | {cells} | {", ".join(f"{r[0]:.1f}" for r in rows)} |')
    for name in vals:
        if name != 'student' and 'student' in vals:
            gains = [f[0] - s[0] for s, f in zip(vals['student'], vals[name])]
            lines += [
                '', f'{name} gain in mAP per run: ' + ', '.join(f'{g:+.1f}' for g in gains) +
                f' (mean {st.mean(gains):+.1f}).'
            ]
    return '\n'.join(lines)
