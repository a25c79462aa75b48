"""Result tables and plots of a benchmark.

From the run_info of finished runs (:mod:`.runner`): markdown tables of COCO
AP, AP50, AP75, APs/m/l as mean ± std over seeds with the gain paired by seed
against the student run (``bbox``; ``segm`` for masks; ``voc`` for Pascal VOC
AP50/AP75), bar charts with error bars and mAP-over-epochs curves.
"""
import json
import os
import os.path as osp
import statistics as st
from typing import Optional

from ..logs import METRICS

#: table kinds: logged metric keys (the first is the headline the gains and plots
#: use) and their column titles. VOC's own metric is AP at IoU 0.5; AP75 is filled
#: when the evaluator also ran IoU 0.75 (configs/_base_/datasets/synthetic_voc.py).
KINDS = {
    'bbox': (['coco/' + k for k in METRICS], ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']),
    'segm': (['coco/' + k.replace('bbox', 'segm')
              for k in METRICS], ['mask mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']),
    'voc': (['pascal_voc/AP50', 'pascal_voc/AP75'], ['VOC mAP (AP50)', 'AP75']),
}


def _cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{st.mean(values):.1f} ± {st.stdev(values):.1f}'


def _teacher_of(name: str, infos: list, names) -> Optional[str]:
    """The teacher run of run ``name``: the ``teacher_run`` its run_info records (of
    several teachers, the strongest in ``names``), else (older run_info) ``'<first
    word> teacher'`` or ``'teacher'`` when present."""
    recorded = [i.get('teacher_run') for i in infos if i.get('teacher_run')]
    if recorded and isinstance(recorded[0], dict):
        known = [r for r in recorded[0].values() if r in names]
        return max(known, key=lambda r: st.mean(v[0] for v in names[r].values()), default=None)
    if recorded:
        return recorded[0]
    if 'teacher_run' in infos[0]:  # recorded as None: not a Distiller run
        return None
    for guess in (name.split(' ')[0] + ' teacher', 'teacher'):
        if guess in names:
            return guess
    return None


def _baseline_of(name: str, by_name: dict) -> Optional[dict]:
    """The student run ``name`` is compared with: '<the longest leading words of its
    name> student' present in ``by_name`` ('std LF pseudo PKD' -> 'std LF student',
    else 'std student'; 'GFL TID' -> 'GFL student'), else 'student'."""
    words = name.split(' ')
    for n in range(len(words) - 1, 0, -1):
        candidate = ' '.join(words[:n]) + ' student'
        if candidate != name and candidate in by_name:
            return by_name[candidate]
    return by_name.get('student')


def table(results: list, baseline: list = (), kind: str = 'bbox', teachers: list = ()) -> str:
    """Markdown table of one of :data:`KINDS` ('bbox', 'segm' COCO AP; 'voc'
    Pascal VOC AP); gains are paired by seed against the student runs (from
    ``results``, else ``baseline``) of the same detector. Runs without the
    kind's headline metric are left out.

    Every distillation row shows its teacher's headline metric (from ``results`` or
    ``teachers``, the run_info of teacher runs) and the share of the teacher-student
    gap its mean paired gain closes: ``gain / (teacher - student)``, the student's
    mAP averaged over the same seeds as the gain ('–' when the teacher is not above
    the student)."""
    keys, titles = KINDS[kind]
    by_name, infos = {}, {}
    for r in list(results) + [t for t in teachers if t['name'] not in {x['name'] for x in results}]:
        if keys[0] in r['metrics']:
            by_name.setdefault(r['name'], {})[r['seed']] = [
                100 * r['metrics'][k] if k in r['metrics'] else None for k in keys
            ]
            infos.setdefault(r['name'], []).append(r)
    shown = [n for n in by_name if n in {r['name'] for r in results}]
    fallback = {
        r['seed']: [100 * r['metrics'][keys[0]]]
        for r in baseline if keys[0] in r['metrics']
    }
    lines = [
        f'| run | {" | ".join(titles)} | gain vs student | teacher | gap closed '
        f'| per-seed {titles[0]} |', '|---|' + '---|' * (len(titles) + 4)
    ]
    for name in shown:
        seeds = by_name[name]
        rows = [seeds[s] for s in sorted(seeds)]
        cells = ' | '.join(_cell(list(c)) for c in zip(*rows))
        base = _baseline_of(name, by_name) or fallback
        paired = [seeds[s][0] - base[s][0] for s in sorted(seeds) if s in base]
        # a student or teacher baseline: named so, and not a distillation run (its
        # run_info names the teacher it learnt from)
        plain = name.endswith(('student', 'teacher')) and \
            not any(i.get('teacher_run') for i in infos[name])
        gain = '' if plain or not paired else \
            f'{st.mean(paired):+.1f} ({", ".join(f"{g:+.1f}" for g in paired)})'
        teacher_cell = closed = ''
        teacher = None if plain else _teacher_of(name, infos[name], by_name)
        if teacher in by_name:
            t_map = st.mean(v[0] for v in by_name[teacher].values())
            teacher_cell = f'{t_map:.1f}'
            # the student of the same seeds as the paired gain
            same = [base[s][0] for s in seeds if s in base]
            gap = t_map - st.mean(same) if same else 0.0
            closed = f'{100 * st.mean(paired) / gap:.0f} %' if paired and gap > 0 else '–'
        per_seed = ', '.join(f'{seeds[s][0]:.1f}' for s in sorted(seeds))
        lines.append(f'| {name} | {cells} | {gain} | {teacher_cell} | {closed} | {per_seed} |')
    return '\n'.join(lines)


def kinds_present(results: list) -> list:
    """The :data:`KINDS` whose headline metric some run has, in KINDS order."""
    return [k for k, (keys, _) in KINDS.items() if any(keys[0] in r['metrics'] for r in results)]


def report(results: list, baseline: list, teachers: list = ()) -> str:
    """One table per metric kind present: COCO boxes, then COCO masks, then
    Pascal VOC boxes (VOC runs: presets ``synthetic_voc`` / ``voc_retina``);
    ``teachers``: run_info of teacher runs not in ``results`` (see :func:`table`)."""
    heads = dict(
        bbox='',
        segm='Instance segmentation (mask AP):\n\n',
        voc='Pascal VOC metric (VOCMetric, area mode):\n\n')
    md = '\n\n'.join(heads[k] + table(results, baseline, k, teachers)
                     for k in kinds_present(results) or ['bbox'])
    # runs read from earlier results files (runner.load_earlier), not trained here
    earlier = sorted({(r['name'], r['seed'], r['source'])
                      for r in [*results, *baseline, *teachers] if r.get('source')})
    if earlier:
        md += '\n\nRead from earlier results, not trained in this work dir: ' + '; '.join(
            f'{n} seed {s} ({src})' for n, s, src in earlier) + '.'
    return md


def plot(results: list, path: str, kind: str = 'bbox') -> None:
    """Bar chart of mean ``kind`` mAP per run with sample-std error bars and the
    per-seed values as dots, in the order of ``results``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = KINDS[kind][0][0]
    by_name = {}
    for r in results:
        if key in r['metrics']:
            by_name.setdefault(r['name'], []).append(100 * r['metrics'][key])
    if not by_name:
        return
    names = list(by_name)
    means = [st.mean(v) for v in by_name.values()]
    stds = [st.stdev(v) if len(v) > 1 else 0.0 for v in by_name.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.6))
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color='#7aa6d6')
    for i, vals in enumerate(by_name.values()):
        ax.plot([i] * len(vals), vals, 'k.', ms=4)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha='right', fontsize=8)
    ax.set_ylabel(f'{KINDS[kind][1][0]} (%)')
    ax.set_title(f'mean ± std over seeds (dots: seeds), {key}', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(results: list, path: str) -> None:
    """bbox mAP over epochs per run (mean over seeds), when runs were evaluated
    more than once (``val_interval``)."""
    curves = {}
    for r in results:
        for epoch, value in r.get('history') or []:
            curves.setdefault(r['name'], {}).setdefault(epoch, []).append(100 * value)
    curves = {k: v for k, v in curves.items() if len(v) > 1}
    if not curves:
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for name, points in curves.items():
        epochs = sorted(points)
        ax.plot(epochs, [st.mean(points[e]) for e in epochs], marker='o', ms=3, label=name)
    ax.set_xlabel('epoch')
    ax.set_ylabel('box mAP (%), mean over seeds (VOC: AP50)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(md: str, results: list, stem: str) -> None:
    """Print ``md`` and write ``<stem>.md``, ``<stem>.json`` (``results``), the bar
    charts ``<stem>.png`` (first kind present; ``<stem>_segm.png`` /
    ``<stem>_voc.png`` for the others) and ``<stem>_epochs.png``."""
    print('\n' + md)
    os.makedirs(osp.dirname(stem) or '.', exist_ok=True)
    with open(stem + '.md', 'w') as f:
        f.write(md + '\n')
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=2)
    for i, kind in enumerate(kinds_present(results)):  # <stem>.png, then _segm / _voc
        plot(results, stem + ('.png' if i == 0 else f'_{kind}.png'), kind)
    plot_history(results, stem + '_epochs.png')
