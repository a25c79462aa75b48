"""Train and evaluate a matrix of runs x seeds, then tabulate it.

Each run is a config (plus optional ``--cfg-options``) trained with
``tools/train.py`` in ``<work-dir>/<run>/seed<k>``; finished runs (final
checkpoint + evaluation present) are skipped, so an interrupted benchmark
resumes. Writes ``results.json``, ``results.md`` (COCO AP, AP50, AP75,
APs/m/l as mean ± std over seeds, gain over the ``student`` run paired by seed,
per-seed mAP; VOC runs get their own table of VOC mAP = AP50 and AP75),
the teacher's mAP and the share of the teacher-student gap closed,
``results.png`` (bars with error bars; ``results_segm.png`` for masks,
``results_voc.png`` for VOC next to COCO runs) and, with ``--val-interval``,
``results_epochs.png``. Run it from the repository root (the built-in runs name
configs relative to it).

    python tools/analysis_tools/benchmark.py --preset tid_ablation --seeds 0 1 2 \\
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth --jobs 2

Runs of the work dir are found again (resumed); where the work dir is gone, the
results the benchmark wrote before stand in for their runs (``--results
docs/measurements/standard.json``): those are not trained again, and the tables
name them.

Your own matrix (``--matrix my_matrix.py``, e.g. methods on your dataset) is a
Python config file (mmengine Config; JSON/YAML with the same keys work too):

    seeds = [0, 1, 2]                         # optional, default 0 1 2
    runs = {                                  # run name -> fields
        'student': dict(config='configs/my/retinanet_r50_mydata.py'),
        'FRS': dict(config='configs/my/frs_mydata.py',
                    cfg_options=['model.distill_losses.loss_frs_fpn.loss_weight=0.01'],
                    teacher_ckpt='work_dirs/my_teacher.pth', seeds=[0, 1]),
    }

Fields: config (required), cfg_options (list of key=value), seeds, teacher (the
name of another run, trained first at seed 0, whose final checkpoint is this
run's teacher) and teacher_ckpt. Gains are taken against the run named
``student``. See mmkd_det/analysis/benchmark/matrix.py.

The teacher of a Distiller run is ``--teacher-ckpt`` if given, else the run's
teacher_ckpt, else its teacher run's checkpoint (built-in synthetic runs: the
``teacher`` run, ``GFL teacher`` for GFL, ``MaskRCNN teacher`` for Mask R-CNN),
else the one its config names (COCO/VOC: the model-zoo teacher). COCO
(``--preset coco_retina``, data in ``data/coco/``) and VOC (``--preset
voc_retina``, ``data/VOCdevkit/``) runs stop before any training when their
dataset is missing, naming the missing files. ``--preset synthetic_voc`` runs
the synthetic pair on the VOC layout of the embedded data (no download).
"""
import argparse
import os.path as osp
import sys

from mmkd_det.analysis.benchmark import (PRESETS, RUNS, MatrixError, ResultsError, baseline,
                                         collect, load_earlier, load_matrix, report, run_matrix,
                                         teacher_results, write)

TRAIN = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'train.py')


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default='main',
        help='a built-in matrix (ignored with --matrix)')
    parser.add_argument('--matrix', help='your own matrix file (see below)')
    parser.add_argument(
        '--runs',
        nargs='+',
        help='run names of the matrix instead of a preset '
        '(with --matrix: a subset of its runs)')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=None,
        help='seeds of every run (default: the matrix\'s, else 0 1 2)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--teacher-ckpt', default=None)
    parser.add_argument(
        '--val-interval',
        type=int,
        default=None,
        help='evaluate every N epochs (for the mAP-over-epochs plot); '
        'default: the config\'s (end of training only)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='parallel trainings; CPU threads are split between them')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads of each training (default: CPUs / jobs); 1 when other jobs '
        'share the machine')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train nothing: tabulate the finished runs of the matrix')
    parser.add_argument(
        '--results',
        nargs='+',
        default=[],
        metavar='JSON',
        help='earlier results (the .json of an earlier --out): their runs count as finished '
        'where the work dir has none, e.g. to go on after the work dir is gone; the tables '
        'name them')
    parser.add_argument(
        '--out', default=None, help='results file stem (default <work-dir>/results)')
    return parser, parser.parse_args()


def main():
    parser, args = parse_args()
    try:
        runs = load_matrix(args.matrix) if args.matrix else RUNS
    except MatrixError as err:
        sys.exit(str(err))
    names = args.runs or (list(runs) if args.matrix else PRESETS[args.preset])
    unknown = [n for n in names if n not in runs]
    if unknown:
        parser.error(f'unknown run(s) {unknown}; the matrix has {sorted(runs)}')
    absent = [runs[n].config for n in names if not osp.isfile(runs[n].config)]
    if absent:
        sys.exit(f'config(s) not found: {absent[:3]}. The built-in runs name configs relative '
                 f'to the repository root: run the benchmark from there.')
    out = args.out or osp.join(args.work_dir, 'results')
    try:
        earlier = load_earlier(args.results, runs)
        if args.report_only:
            results = collect(runs, names, args.work_dir, args.seeds, earlier)
        else:
            results = run_matrix(runs, names, args.work_dir, TRAIN, args.seeds, args.teacher_ckpt,
                                 args.jobs, args.val_interval, args.threads, earlier)
    except (FileNotFoundError, RuntimeError, ResultsError) as err:
        sys.exit(str(err))
    teachers = teacher_results(runs, names, args.work_dir, earlier)
    write(
        report(results, baseline(runs, args.work_dir, args.seeds, earlier), teachers), results, out)


if __name__ == '__main__':
    main()
