"""Train and evaluate a matrix of runs x seeds on the synthetic benchmark.

Each run is a config (plus optional ``--cfg-options``) trained with
``tools/train.py`` in ``<work-dir>/<run>/seed<k>``; finished runs (final
checkpoint + evaluation present) are skipped, so an interrupted benchmark
resumes. Writes ``results.json``, ``results.md`` (COCO AP, AP50, AP75,
APs/m/l as mean ± std over seeds, gain over the ``student`` run, per-seed mAP;
VOC runs get their own table of VOC mAP = AP50 and AP75), ``results.png`` (bars
with error bars; ``results_segm.png`` for masks, ``results_voc.png`` for VOC
next to COCO runs) and, with ``--val-interval``, ``results_epochs.png``.

    python tools/benchmark.py --preset tid_ablation --seeds 0 1 2 \
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth --jobs 2

A run needing a teacher gets ``model.teacher_ckpt`` = ``--teacher-ckpt``; without
it, synthetic runs get the final checkpoint of the ``teacher`` run (seed 0) of the
same matrix and other configs keep the ``teacher_ckpt`` they name. On COCO
(``--preset coco_retina``: the R50 2x baseline and every RetinaNet R101 -> R50
config; data in ``data/coco/``) and VOC (``--preset voc_retina``, data in
``data/VOCdevkit/``) a missing dataset stops the benchmark, naming the missing
files, before any run is trained. ``--preset synthetic_voc`` runs the synthetic
pair on the VOC layout of the embedded data (no download).
"""
import argparse
import json
import os
import os.path as osp
import statistics as st
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from demo import (METRICS, ROOT, eval_records, final_checkpoint, last_metrics,  # tools/demo.py
                  main_key)

SYN = 'configs/synthetic/'
TID = SYN + 'tid_retina_r18w48_r18w32_synthetic.py'
ABL = SYN + 'ablations/'
LIT = 'model.distill_losses.loss_tid.low_band=scaled'
_T = 'model.distill_losses.loss_tid.'
SKD = 'skd_retina_r18w48_r18w32_synthetic'
#: run name -> (config, cfg-options). Names are stable: work dirs use them.
RUNS = {
    'teacher': (SYN + 'retinanet_r18w48_synthetic.py', []),
    'student': (SYN + 'retinanet_r18w32_synthetic.py', []),
    'FRS': (SYN + 'frs_retina_r18w48_r18w32_synthetic.py', []),
    'TID': (TID, []),
    # Table 3: DIEM task factors
    'TID cls only': (ABL + 'tid_retina_r18w48_r18w32_synthetic_cls_only.py', []),
    'TID reg only': (ABL + 'tid_retina_r18w48_r18w32_synthetic_reg_only.py', []),
    # Table 4: detector thresholds vs raw IoU
    'TID raw IoU': (ABL + 'tid_retina_r18w48_r18w32_synthetic_raw_iou.py', []),
    # Table 5: LDAM areas
    'TID key only': (ABL + 'tid_retina_r18w48_r18w32_synthetic_key_only.py', []),
    'TID weak only': (ABL + 'tid_retina_r18w48_r18w32_synthetic_weak_only.py', []),
    # the TID paper's detector: GFL (teacher GFL R18-w48, --teacher-ckpt its seed-0 run)
    'GFL teacher': (SYN + 'gfl_r18w48_synthetic.py', []),
    'GFL student': (SYN + 'gfl_r18w32_synthetic.py', []),
    'GFL FRS': (SYN + 'frs_gfl_r18w48_r18w32_synthetic.py', []),
    'GFL TID': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', []),
    # Tables 3-5 on GFL (the options of the RetinaNet ablation configs)
    'GFL TID cls only': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'tasks=[cls]']),
    'GFL TID reg only': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'tasks=[reg]']),
    'GFL TID raw IoU': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'loc_score=iou']),
    'GFL TID key only': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'areas=[key]']),
    'GFL TID weak only': (SYN + 'tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'areas=[weak]']),
    # readings of ambiguous passages (docs/tid.md), one change each from the
    # literal Eq. 11 low band they were screened against
    'TID low band scaled': (TID, [LIT]),
    'TID gamma 0.025': (TID, [LIT, 'model.distill_losses.loss_tid.gamma=0.025']),
    'TID gamma 0.25': (TID, [LIT, 'model.distill_losses.loss_tid.gamma=0.25']),
    'TID key indicator': (TID, [LIT, 'model.distill_losses.loss_tid.key_mode=indicator']),
    'TID Eq9 as printed': (TID, [LIT, 'model.distill_losses.loss_tid.info_decay=as_printed']),
    'TID batch top-k': (TID, [LIT, 'model.distill_losses.loss_tid.topk_scope=batch']),
    # and on the chosen default (low_band='constant')
    'TID Eq9 as printed + low band constant': (
        TID, ['model.distill_losses.loss_tid.info_decay=as_printed']),
    # Structured KD and its Table VII / VIII ablations
    'SKD': (SYN + SKD + '.py', []),
    'SKD AT only': (ABL + SKD + '_at_only.py', []),
    'SKD AM only': (ABL + SKD + '_am_only.py', []),
    'SKD NLD only': (ABL + SKD + '_nld_only.py', []),
    'SKD AT+AM': (ABL + SKD + '_agd.py', []),
    'SKD AT+AM spatial': (ABL + SKD + '_agd_spatial.py', []),
    'SKD AT+AM channel': (ABL + SKD + '_agd_channel.py', []),
    'SKD authors code': (ABL + SKD + '_authors_code.py', []),
    # sensitivity to the overall weight (the paper's Fig. 11 varies alpha, beta, gamma)
    'SKD weights x0.1': (SYN + SKD + '.py', ['model.distill_losses.loss_skd.loss_weight=0.1']),
    # the review's methods (issue 5), RetinaNet pair; LD on the GFL pair
    'FitNet': (SYN + 'fitnet_retina_r18w48_r18w32_synthetic.py', []),
    'FGFI': (SYN + 'fgfi_retina_r18w48_r18w32_synthetic.py', []),
    'DeFeat': (SYN + 'defeat_retina_r18w48_r18w32_synthetic.py', []),
    'FGD': (SYN + 'fgd_retina_r18w48_r18w32_synthetic.py', []),
    'MGD': (SYN + 'mgd_retina_r18w48_r18w32_synthetic.py', []),
    'PKD': (SYN + 'pkd_retina_r18w48_r18w32_synthetic.py', []),
    'CWD': (SYN + 'cwd_retina_r18w48_r18w32_synthetic.py', []),
    'KD': (SYN + 'kd_retina_r18w48_r18w32_synthetic.py', []),
    'GFL LD': (SYN + 'ld_gfl_r18w48_r18w32_synthetic.py', []),
    # weight inheritance (FGD/MGD's inheriting strategy) on a student of the
    # teacher's head width; gains against 'FPN96 student'
    'FPN96 student': (SYN + 'retinanet_r18w32_fpn96_synthetic.py', []),
    'FPN96 FGD': (SYN + 'fgd_retina_r18w48_r18w32fpn96_synthetic.py', []),
    'FPN96 FGD inherit': (SYN + 'fgd_retina_r18w48_r18w32fpn96_synthetic_inherit.py', []),
    'FPN96 MGD': (SYN + 'mgd_retina_r18w48_r18w32fpn96_synthetic.py', []),
    'FPN96 MGD inherit': (SYN + 'mgd_retina_r18w48_r18w32fpn96_synthetic_inherit.py', []),
    # COCO 2017 (data/coco/; 24 epochs on 8 GPUs each): the student baseline and the
    # RetinaNet R101 -> R50 configs, teachers from their configs' model-zoo URLs
    # unless --teacher-ckpt is given
    'COCO student': ('configs/retinanet/retinanet_r50_fpn_2x_coco.py', []),
    **{f'COCO {m}': (f'configs/{f}_retina_r101_r50.py', []) for m, f in (
        ('FRS', 'frs'), ('TID', 'tid'), ('SKD', 'skd'), ('FitNet', 'fitnet'), ('FGFI', 'fgfi'),
        ('DeFeat', 'defeat'), ('FGD', 'fgd'), ('MGD', 'mgd'), ('PKD', 'pkd'), ('CWD', 'cwd'),
        ('KD', 'kd'))},
    # Pascal VOC: the synthetic data's VOC layout (VOCDataset, VOCMetric; teacher as
    # for the COCO layout) and VOC 07+12 itself (data/VOCdevkit/; teacher from
    # configs/retinanet/retinanet_r101_fpn_1x_voc0712.py unless --teacher-ckpt is given)
    'SynVOC student': (SYN + 'retinanet_r18w32_synthetic_voc.py', []),
    'SynVOC FRS': (SYN + 'frs_retina_r18w48_r18w32_synthetic_voc.py', []),
    'SynVOC TID': (SYN + 'tid_retina_r18w48_r18w32_synthetic_voc.py', []),
    'VOC student': ('configs/retinanet/retinanet_r50_fpn_1x_voc0712.py', []),
    'VOC FRS': ('configs/frs/frs_retina_r101_r50_voc.py', []),
    'MaskRCNN teacher': (SYN + 'mask_rcnn_r18w48_synthetic.py', []),
    'MaskRCNN student': (SYN + 'mask_rcnn_r18w32_synthetic.py', []),
    'MaskRCNN SKD': (SYN + 'skd_mask_rcnn_r18w48_r18w32_synthetic.py', []),
}
PRESETS = {
    'main': ['teacher', 'student', 'FRS', 'TID', 'SKD'],
    'skd_ablation': ['student', 'FRS', 'SKD', 'SKD AT only', 'SKD AM only', 'SKD NLD only',
                     'SKD AT+AM', 'SKD AT+AM spatial', 'SKD AT+AM channel',
                     'SKD authors code'],
    'skd_sensitivity': ['student', 'SKD', 'SKD weights x0.1'],
    'review': ['student', 'FRS', 'TID', 'SKD', 'FitNet', 'FGFI', 'DeFeat', 'FGD', 'MGD', 'PKD',
               'CWD', 'KD'],
    # GFL pair: --teacher-ckpt work_dirs/benchmark/GFL_teacher/seed0/epoch_10.pth
    'review_gfl': ['GFL student', 'GFL FRS', 'GFL TID', 'GFL LD'],
    'inherit': ['FPN96 student', 'FPN96 FGD', 'FPN96 FGD inherit', 'FPN96 MGD',
                'FPN96 MGD inherit'],
    'coco_retina': ['COCO student', 'COCO FRS', 'COCO TID', 'COCO SKD', 'COCO FitNet',
                    'COCO FGFI', 'COCO DeFeat', 'COCO FGD', 'COCO MGD', 'COCO PKD', 'COCO CWD',
                    'COCO KD'],
    'synthetic_voc': ['SynVOC student', 'SynVOC FRS', 'SynVOC TID'],
    'voc_retina': ['VOC student', 'VOC FRS'],
    # train 'MaskRCNN teacher' (seed 0) first and pass its checkpoint as --teacher-ckpt
    'mask_rcnn': ['MaskRCNN student', 'MaskRCNN SKD'],
    'tid_ablation': ['student', 'FRS', 'TID', 'TID cls only', 'TID reg only', 'TID raw IoU',
                     'TID key only', 'TID weak only'],
    'gfl': ['GFL student', 'GFL FRS', 'GFL TID'],
    'gfl_tid_ablation': ['GFL student', 'GFL FRS', 'GFL TID', 'GFL TID cls only',
                         'GFL TID reg only', 'GFL TID raw IoU', 'GFL TID key only',
                         'GFL TID weak only'],
    'tid_readings': ['TID', 'TID low band scaled', 'TID gamma 0.025', 'TID gamma 0.25',
                     'TID key indicator', 'TID Eq9 as printed', 'TID batch top-k',
                     'TID Eq9 as printed + low band constant'],
}


def run_dir(work_dir: str, name: str, seed: int) -> str:
    return osp.join(work_dir, name.replace(' ', '_').replace('.', ''), f'seed{seed}')


def needs_teacher(cfg: str) -> bool:
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, cfg)).model.get('type') == 'Distiller'


def eval_history(work_dir: str) -> list:
    """``[epoch, headline box mAP]`` of every evaluation logged in ``work_dir``."""
    return [[rec.get('step'), rec[main_key(rec)]] for rec in eval_records(work_dir)]


def train_one(name: str, seed: int, work_dir: str, teacher_ckpt: str, threads: int,
              val_interval: Optional[int] = None) -> dict:
    cfg, options = RUNS[name]
    wd = run_dir(work_dir, name, seed)
    info_path = osp.join(wd, 'run_info.json')
    done = finished(work_dir, name, seed)
    if done and final_checkpoint(wd) and last_metrics(wd):
        return done
    os.makedirs(wd, exist_ok=True)
    options = [f'randomness.seed={seed}', *options]
    if val_interval:
        options.append(f'train_cfg.val_interval={val_interval}')
    if needs_teacher(cfg) and teacher_ckpt:
        options.append(f'model.teacher_ckpt={teacher_ckpt}')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir', wd,
           '--cfg-options', *options]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print('$', ' '.join(cmd), flush=True)
    start = time.time()
    with open(osp.join(wd, 'train_stdout.log'), 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{name} seed {seed} failed, see {wd}/train_stdout.log')
    info = dict(name=name, seed=seed, config=cfg, cfg_options=options,
                train_seconds=round(time.time() - start, 1), threads=threads,
                metrics=last_metrics(wd), history=eval_history(wd))
    with open(info_path, 'w') as f:
        json.dump(info, f, indent=2)
    key = main_key(info['metrics'])
    print(f'done {name} seed {seed}: {key} {100 * info["metrics"][key]:.1f} '
          f'({info["train_seconds"]:.0f} s)', flush=True)
    return info


def finished(work_dir: str, name: str, seed: int):
    """The run_info of a finished run, or None."""
    path = osp.join(run_dir(work_dir, name, seed), 'run_info.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


#: table kinds: logged metric keys (the first is the headline the gains and plots
#: use) and their column titles. VOC's own metric is AP at IoU 0.5; AP75 is filled
#: when the evaluator also ran IoU 0.75 (configs/_base_/datasets/synthetic_voc.py).
KINDS = {
    'bbox': (['coco/' + k for k in METRICS], ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']),
    'segm': (['coco/' + k.replace('bbox', 'segm') for k in METRICS],
             ['mask mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']),
    'voc': (['pascal_voc/AP50', 'pascal_voc/AP75'], ['VOC mAP (AP50)', 'AP75']),
}


def _cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{st.mean(values):.1f} ± {st.stdev(values):.1f}'


def table(results: list, baseline: list = (), kind: str = 'bbox') -> str:
    """Markdown table of one of :data:`KINDS` ('bbox', 'segm' COCO AP; 'voc'
    Pascal VOC AP); gains are paired by seed against the student runs (from
    ``results``, else ``baseline``) of the same detector. Runs without the
    kind's headline metric are left out."""
    keys, titles = KINDS[kind]
    by_name = {}
    for r in results:
        if keys[0] in r['metrics']:
            by_name.setdefault(r['name'], {})[r['seed']] = [
                100 * r['metrics'][k] if k in r['metrics'] else None for k in keys]
    fallback = {r['seed']: [100 * r['metrics'][keys[0]]] for r in baseline
                if keys[0] in r['metrics']}
    lines = [f'| run | {" | ".join(titles)} | gain vs student | per-seed {titles[0]} |',
             '|---|' + '---|' * (len(titles) + 2)]
    for name, seeds in by_name.items():
        rows = [seeds[s] for s in sorted(seeds)]
        cells = ' | '.join(_cell(list(c)) for c in zip(*rows))
        # a run is compared with '<its first word> student' when the matrix has one
        # ('GFL TID' -> 'GFL student'), else with 'student'
        base = by_name.get(name.split(' ')[0] + ' student') or by_name.get('student') \
            or fallback
        paired = [seeds[s][0] - base[s][0] for s in sorted(seeds) if s in base]
        gain = '' if name.endswith('student') or name.endswith('teacher') or not paired else \
            f'{st.mean(paired):+.1f} ({", ".join(f"{g:+.1f}" for g in paired)})'
        per_seed = ', '.join(f'{seeds[s][0]:.1f}' for s in sorted(seeds))
        lines.append(f'| {name} | {cells} | {gain} | {per_seed} |')
    return '\n'.join(lines)


def kinds_present(results: list) -> list:
    """The :data:`KINDS` whose headline metric some run has, in KINDS order."""
    return [k for k, (keys, _) in KINDS.items()
            if any(keys[0] in r['metrics'] for r in results)]


def check_data(names) -> None:
    """Stop before any training when a run's dataset files are missing (COCO/VOC
    runs without data/coco or data/VOCdevkit)."""
    from mmengine.config import Config

    from mmkd_det.apis.preflight import missing_data
    for name in names:
        cfg = RUNS[name][0]
        if cfg.startswith(SYN):
            continue
        missing = missing_data(Config.fromfile(osp.join(ROOT, cfg)))
        if missing:
            raise SystemExit(f'{name}: dataset files not found: {missing[:3]}. Put the dataset '
                             f'there (see README) or choose synthetic runs.')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='main')
    parser.add_argument('--runs', nargs='+', choices=sorted(RUNS),
                        help='run names instead of a preset')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--teacher-ckpt', default=None)
    parser.add_argument('--val-interval', type=int, default=None,
                        help='evaluate every N epochs (for the mAP-over-epochs plot); '
                        'default: the config\'s (end of training only)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='parallel trainings; CPU threads are split between them')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the finished runs of the matrix')
    parser.add_argument('--out', default=None,
                        help='results file stem (default <work-dir>/results)')
    args = parser.parse_args()
    os.chdir(ROOT)
    from mmkd_det.datasets.synthetic import generate_synthetic_dataset
    generate_synthetic_dataset('data/synthetic', num_train=800, num_val=200, img_size=128,
                               seed=0)
    names = args.runs or PRESETS[args.preset]
    out = args.out or osp.join(args.work_dir, 'results')
    if args.report_only:
        results = [r for r in (finished(args.work_dir, n, s) for n in names for s in args.seeds)
                   if r]
        baseline = [r for r in (finished(args.work_dir, 'student', s) for s in args.seeds) if r]
        return write(report(results, baseline), results, out)
    check_data(names)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    teacher = args.teacher_ckpt
    if teacher is None and any(RUNS[n][0].startswith(SYN) and needs_teacher(RUNS[n][0])
                               for n in names):
        # synthetic distillation runs need the synthetic teacher; other configs keep
        # the teacher_ckpt they name
        train_one('teacher', 0, args.work_dir, None, os.cpu_count() or 1)
        teacher = final_checkpoint(run_dir(args.work_dir, 'teacher', 0))
    jobs = [(n, s) for n in names for s in args.seeds if n != 'teacher' or s == 0]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(
            lambda j: train_one(j[0], j[1], args.work_dir, teacher, threads,
                                args.val_interval), jobs))
    baseline = [r for r in (finished(args.work_dir, 'student', s) for s in args.seeds) if r]
    write(report(results, baseline), results, out)


def report(results: list, baseline: list) -> str:
    """One table per metric kind present: COCO boxes, then COCO masks, then
    Pascal VOC boxes (VOC runs: ``--preset synthetic_voc`` / ``voc``)."""
    heads = dict(bbox='', segm='Instance segmentation (mask AP):\n\n',
                 voc='Pascal VOC metric (VOCMetric, area mode):\n\n')
    return '\n\n'.join(heads[k] + table(results, baseline, k)
                        for k in kinds_present(results) or ['bbox'])


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
    more than once (``--val-interval``)."""
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
    print('\n' + md)
    os.makedirs(osp.dirname(stem) or '.', exist_ok=True)
    with open(stem + '.md', 'w') as f:
        f.write(md + '\n')
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=2)
    for i, kind in enumerate(kinds_present(results)):   # <stem>.png, then _segm / _voc
        plot(results, stem + ('.png' if i == 0 else f'_{kind}.png'), kind)
    plot_history(results, stem + '_epochs.png')


if __name__ == '__main__':
    main()
