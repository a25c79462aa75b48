"""Run matrices of the benchmark: the built-in runs and presets, and a user's file.

A run is a config trained with ``--cfg-options`` over seeds in
``<work_dir>/<run>/seed<k>``. The built-in runs (:data:`RUNS`) name configs of
this repository relative to its root; :data:`PRESETS` group them.

A user's matrix is a Python config file (read by mmengine's ``Config``; JSON
and YAML with the same keys work too)::

    # my_matrix.py
    seeds = [0, 1, 2]        # optional: the seeds of every run (default 0, 1, 2)
    runs = {
        # run name: dict(config, and optionally cfg_options, seeds, teacher, teacher_ckpt)
        'teacher': dict(config='configs/retinanet/retinanet_r18w48_synthetic.py'),
        'student': dict(config='configs/retinanet/retinanet_r18w32_synthetic.py'),
        'FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
                    teacher='teacher'),
        'FRS x2': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
                       cfg_options=['model.distill_losses.loss_frs_fpn.loss_weight=0.01'],
                       teacher_ckpt='work_dirs/my_teacher.pth', seeds=[0, 1]),
    }

Fields of a run: ``config`` (path, required), ``cfg_options`` (list of
``key=value`` strings, as ``tools/train.py --cfg-options`` takes them),
``seeds`` (list of ints), ``teacher`` (the name of another run of the matrix:
its seed-0 final checkpoint becomes this run's ``model.teacher_ckpt``; that run
is trained first, at seed 0 only; a Distiller with several ``teachers``
takes a dict ``{teacher name: run}``, each giving ``model.teachers.<name>.ckpt``),
``teacher_ckpt`` (a checkpoint path) and
``overlays`` (config files merged over ``config``, as ``tools/train.py
--overlay``; the standard tier is ``configs/_base_/tiers/synthetic_standard.py``).
A Distiller run with neither keeps the ``teacher_ckpt`` of its config. Gains
are paired by seed against the run named ``<the longest leading words of the
name> student`` that exists (``GFL student`` for ``GFL TID``, ``std LF student``
for ``std LF pseudo PKD``), else ``student``.
"""
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

#: seeds of a run when neither the command line nor the matrix names any
DEFAULT_SEEDS = (0, 1, 2)


class RunSpec(NamedTuple):
    """One run of a matrix (see the module doc for the fields; ``teacher`` is a run
    name, or ``((teacher name, run), ...)`` for a Distiller with several teachers)."""
    config: str
    cfg_options: Tuple[str, ...] = ()
    seeds: Optional[Tuple[int, ...]] = None
    teacher: Union[str, Tuple[Tuple[str, str], ...], None] = None
    teacher_ckpt: Optional[str] = None
    overlays: Tuple[str, ...] = ()


class MatrixError(ValueError):
    """A matrix file or entry that cannot be used; the message names the run and field."""


def _syn(config: str) -> RunSpec:
    """A Distiller run on the embedded synthetic data, taught by the ``teacher`` run."""
    return RunSpec(config, teacher='teacher')


_RET, _GFL, _MRCNN = 'configs/retinanet/', 'configs/gfl/', 'configs/mask_rcnn/'
_TID = 'configs/tid/tid_retina_r18w48_r18w32_synthetic'
_GTID = 'configs/tid/tid_gfl_r18w48_r18w32_synthetic'
_SKD = 'configs/skd/skd_retina_r18w48_r18w32_synthetic'
_PAIR = 'r18w48_r18w32_synthetic.py'
#: run name -> :class:`RunSpec`. Names are stable: work dirs use them.
RUNS: Dict[str, RunSpec] = {
    'teacher': RunSpec(_RET + 'retinanet_r18w48_synthetic.py'),
    'student': RunSpec(_RET + 'retinanet_r18w32_synthetic.py'),
    'FRS': _syn('configs/frs/frs_retina_' + _PAIR),
    'TID': _syn(_TID + '.py'),
    # Table 3: DIEM task factors
    'TID cls only': _syn(_TID + '_cls_only.py'),
    'TID reg only': _syn(_TID + '_reg_only.py'),
    # Table 4: detector thresholds vs raw IoU
    'TID raw IoU': _syn(_TID + '_raw_iou.py'),
    # Table 5: LDAM areas
    'TID key only': _syn(_TID + '_key_only.py'),
    'TID weak only': _syn(_TID + '_weak_only.py'),
    # the TID paper's detector: GFL (teacher GFL R18-w48)
    'GFL teacher': RunSpec(_GFL + 'gfl_r18w48_synthetic.py'),
    'GFL student': RunSpec(_GFL + 'gfl_r18w32_synthetic.py'),
    'GFL FRS': RunSpec('configs/frs/frs_gfl_' + _PAIR, teacher='GFL teacher'),
    'GFL TID': RunSpec(_GTID + '.py', teacher='GFL teacher'),
    # Tables 3-5 on GFL
    **{
        f'GFL TID {name}':
        RunSpec(f'{_GTID}_{name.lower().replace(" ", "_")}.py', teacher='GFL teacher')
        for name in ('cls only', 'reg only', 'raw IoU', 'key only', 'weak only')
    },
    # readings of ambiguous passages (configs/tid/README.md), one change each from the
    # literal Eq. 11 low band they were screened against
    'TID low band scaled': _syn(_TID + '_low_band_scaled.py'),
    # the monotonic low band, one change from the default 'constant'
    'TID low band floor': _syn(_TID + '_low_band_floor.py'),
    'TID gamma 0.025': _syn(_TID + '_low_band_scaled_gamma_0025.py'),
    'TID gamma 0.25': _syn(_TID + '_low_band_scaled_gamma_025.py'),
    'TID key indicator': _syn(_TID + '_low_band_scaled_key_indicator.py'),
    'TID Eq9 as printed': _syn(_TID + '_low_band_scaled_eq9_as_printed.py'),
    'TID batch top-k': _syn(_TID + '_low_band_scaled_batch_topk.py'),
    # and on the chosen default (low_band='constant')
    'TID Eq9 as printed + low band constant': _syn(_TID + '_eq9_as_printed.py'),
    # Structured KD and its Table VII / VIII ablations
    'SKD': _syn(_SKD + '.py'),
    'SKD AT only': _syn(_SKD + '_at_only.py'),
    'SKD AM only': _syn(_SKD + '_am_only.py'),
    'SKD NLD only': _syn(_SKD + '_nld_only.py'),
    'SKD AT+AM': _syn(_SKD + '_agd.py'),
    'SKD AT+AM spatial': _syn(_SKD + '_agd_spatial.py'),
    'SKD AT+AM channel': _syn(_SKD + '_agd_channel.py'),
    'SKD authors code': _syn(_SKD + '_authors_code.py'),
    # sensitivity to the overall weight (the paper's Fig. 11 varies alpha, beta, gamma)
    'SKD weights x0.1': _syn(_SKD + '_weights_x0_1.py'),
    # the review's methods (issue 5), RetinaNet pair; LD on the GFL pair
    **{
        m: _syn(f'configs/{m.lower()}/{m.lower()}_retina_{_PAIR}')
        for m in ('FitNet', 'FGFI', 'DeFeat', 'FGD', 'MGD', 'PKD', 'CWD', 'KD')
    },
    # the review's remaining methods (issue 21) on the RetinaNet pair
    **{
        m: _syn(f'configs/{m.lower()}/{m.lower()}_retina_{_PAIR}')
        for m in ('SSIMKD', 'ReviewKD', 'ICD', 'DRKD')
    },
    'ICD RM only': _syn('configs/icd/icd_retina_r18w48_r18w32_synthetic_rm_only.py'),
    # PAD on FGFI (RetinaNet pair); 'FRCNN PAD' is PAD on Mimic
    'PAD': _syn('configs/pad/pad_retina_' + _PAIR),
    'GID': _syn('configs/gid/gid_retina_' + _PAIR),
    'ICD PFI only': _syn('configs/icd/icd_retina_r18w48_r18w32_synthetic_pfi_only.py'),
    'GFL LD': RunSpec('configs/ld/ld_gfl_' + _PAIR, teacher='GFL teacher'),
    # weight inheritance (FGD/MGD's inheriting strategy) on a student of the
    # teacher's head width; gains against 'FPN96 student'
    'FPN96 student': RunSpec(_RET + 'retinanet_r18w32_fpn96_synthetic.py'),
    **{
        f'FPN96 {m}{tail}':
        _syn(f'configs/{m.lower()}/{m.lower()}_retina_r18w48_r18w32fpn96_'
             f'synthetic{tail.replace(" ", "_")}.py')
        for m in ('FGD', 'MGD')
        for tail in ('', ' inherit')
    },
    # COCO 2017 (data/coco/; 24 epochs on 8 GPUs each): the student baseline and the
    # RetinaNet R101 -> R50 configs, teachers from their configs' model-zoo URLs
    # unless --teacher-ckpt is given
    'COCO student': RunSpec(_RET + 'retinanet_r50_fpn_2x_coco.py'),
    **{
        f'COCO {m}': RunSpec(f'configs/{m.lower()}/{m.lower()}_retina_r101_r50.py')
        for m in ('FRS', 'TID', 'SKD', 'FitNet', 'FGFI', 'DeFeat', 'FGD', 'MGD', 'PKD', 'CWD', 'KD')
    },
    # Pascal VOC: the synthetic data's VOC layout (VOCDataset, VOCMetric; teacher as
    # for the COCO layout) and VOC 07+12 itself (data/VOCdevkit/; teacher from
    # configs/retinanet/retinanet_r101_fpn_1x_voc0712.py unless --teacher-ckpt is given)
    'SynVOC student': RunSpec(_RET + 'retinanet_r18w32_synthetic_voc.py'),
    'SynVOC FRS': _syn('configs/frs/frs_retina_r18w48_r18w32_synthetic_voc.py'),
    'SynVOC TID': _syn(_TID + '_voc.py'),
    'VOC student': RunSpec(_RET + 'retinanet_r50_fpn_1x_voc0712.py'),
    'VOC FRS': RunSpec('configs/frs/frs_retina_r101_r50_voc.py'),
    # Faster R-CNN pair: the RoI-level methods (issue 21)
    'FRCNN teacher': RunSpec('configs/faster_rcnn/faster_rcnn_r18w48_synthetic.py'),
    'FRCNN student': RunSpec('configs/faster_rcnn/faster_rcnn_r18w32_synthetic.py'),
    **{
        f'FRCNN {m}':
        RunSpec(f'configs/{m.lower()}/{m.lower()}_faster_rcnn_{_PAIR}', teacher='FRCNN teacher')
        for m in ('Mimic', 'DKD', 'PAD', 'TADF', 'GID', 'ODGK', 'GDetKD', 'DSIG')
    },
    **{
        f'FRCNN GID {t} only':
        RunSpec(f'configs/gid/gid_faster_rcnn_{_PAIR[:-3]}_{t}_only.py', teacher='FRCNN teacher')
        for t in ('feature', 'relation', 'response')
    },
    'MaskRCNN teacher': RunSpec(_MRCNN + 'mask_rcnn_r18w48_synthetic.py'),
    'MaskRCNN student': RunSpec(_MRCNN + 'mask_rcnn_r18w32_synthetic.py'),
    'MaskRCNN SKD': RunSpec('configs/skd/skd_mask_rcnn_' + _PAIR, teacher='MaskRCNN teacher'),
    # cross-family pairs (docs/cross_family.md): Faster R-CNN -> RetinaNet, RetinaNet -> GFL
    **{
        f'{m} from FRCNN':
        RunSpec(
            f'configs/{m.lower()}/{m.lower()}_faster_rcnn_r18w48_retina_r18w32_synthetic.py',
            teacher='FRCNN teacher')
        for m in ('PKD', 'CWD')
    },
    **{
        f'GFL {m} from Retina':
        RunSpec(
            f'configs/{m.lower()}/{m.lower()}_retina_r18w48_gfl_r18w32_synthetic.py',
            teacher='teacher')
        for m in ('PKD', 'CWD')
    },
}

# The standard tier (configs/_base_/tiers/synthetic_standard.py): the same configs on
# 3000 + 500 images of 192 px, student 8 epochs, the same teacher detector trained
# 24 epochs (synthetic_standard_teacher.py). Run names: 'std ' + the quick tier's name.
_STD = 'configs/_base_/tiers/synthetic_standard.py'
_STD_TEACHER = 'configs/_base_/tiers/synthetic_standard_teacher.py'
_STD_RUNS = ['student', 'FRS', 'TID'
             ] + [f'TID {n}'
                  for n in ('cls only', 'reg only', 'raw IoU', 'key only', 'weak only')] + [
                      'SKD', 'SKD AT only', 'SKD AM only', 'SKD NLD only', 'SKD AT+AM',
                      'SKD AT+AM spatial', 'SKD AT+AM channel', 'SKD weights x0.1'
                  ] + ['FitNet', 'FGFI', 'DeFeat', 'FGD', 'MGD', 'PKD', 'CWD', 'KD']


def _std(name: str, teacher: str = 'std teacher') -> RunSpec:
    """Run ``name`` of the quick tier on the standard tier, taught by ``teacher``."""
    spec = RUNS[name]
    return spec._replace(overlays=(_STD, ), teacher=teacher if spec.teacher else None)


RUNS.update({
    'std teacher': RUNS['teacher']._replace(overlays=(_STD_TEACHER, )),
    **{
        f'std {n}': _std(n)
        for n in _STD_RUNS
    },
    # a teacher barely above its student (what many users bring): the teacher
    # detector on the student's 8-epoch schedule
    'std weak teacher': RUNS['teacher']._replace(overlays=(_STD, )),
    **{
        f'std {n} from weak teacher': _std(n, 'std weak teacher')
        for n in ('FRS', 'TID', 'SKD')
    },
    # GFL: the quick tier's GFL teacher detector on the teacher schedule
    'std GFL teacher': RUNS['GFL teacher']._replace(overlays=(_STD_TEACHER, )),
    **{
        f'std {n}': _std(n, 'std GFL teacher')
        for n in ('GFL student', 'GFL FRS', 'GFL TID', 'GFL LD')
    },
})

#: the loss calibration measured by the benchmark (docs/loss_calibration.md): every
#: loss pulls on the parameters it reaches as hard as the task loss (share 1), fixed
#: at iteration 100 from the gradient norms of iterations 80-99 (task-only before)
CALIBRATION = ('model.loss_calibration.share=1.0', 'model.loss_calibration.window=20',
               'model.loss_calibration.at_iter=100')


def _calibrated(name: str, extra: Tuple[str, ...] = ()) -> RunSpec:
    """Run ``name`` with :data:`CALIBRATION` and the ``extra`` options after it."""
    return RUNS[name]._replace(cfg_options=RUNS[name].cfg_options + CALIBRATION + extra)


#: structured KD with one factor per term (per='term'): its AT, AM and non-local terms
#: each get the same share (overrides the paper's alpha / beta / gamma ratios)
PER_TERM = ('model.loss_calibration.per=term',
            'model.loss_calibration.terms=[loss_skd.loss_at,loss_skd.loss_am,loss_skd.loss_nld]')

RUNS.update({
    f'{n} calibrated per term': _calibrated(n, PER_TERM)
    for n in ('SKD', 'MaskRCNN SKD', 'std SKD', 'std SKD from weak teacher')
})
RUNS.update({
    f'{n} calibrated': _calibrated(n)
    for n in ('FRS', 'TID', 'SKD', 'GFL FRS', 'GFL TID', 'GFL LD', 'MaskRCNN SKD', 'std FRS',
              'std TID', 'std SKD', 'std GFL FRS', 'std GFL TID', 'std GFL LD',
              'std SKD from weak teacher')
})
# the RTMDet deployment pair (defined below) with the same calibration: a pair none of
# these methods' weights were tuned for
_RTMDET_METHODS = ('PKD', 'CWD', 'MGD', 'FGD', 'FRS', 'KD')

# Label-free distillation (configs/label_free/): the student on the first 200 labelled
# images ('LF student', the baseline of the 'LF' runs) against students distilled on all 800
# training images without their annotations (teacher detections as labels, or none at all).
_LF = 'configs/label_free/'
RUNS.update({
    'LF student':
    RunSpec(_RET + 'retinanet_r18w32_synthetic_labelled200.py'),
    'LF pseudo PKD':
    _syn(_LF + 'pkd_retina_r18w48_r18w32_synthetic_pseudo.py'),
    'LF pseudo PKD thr 0.3':
    _syn(_LF + 'pkd_retina_r18w48_r18w32_synthetic_pseudo.py')._replace(
        cfg_options=('model.pseudo_labels.score_thr=0.3', )),
    'LF no labels':
    _syn(_LF + 'pkd_kd_retina_r18w48_r18w32_synthetic_nolabels.py'),
})
# the same on the standard tier, taught by the standard teacher: the labelled subset is the
# first 750 of the 3000 training images (a quarter, as 200 of 800), for the same 3000 iterations
RUNS.update({
    'std LF student':
    RUNS['student']._replace(
        overlays=(_STD, ),
        cfg_options=('train_dataloader.dataset.indices=750', 'train_cfg.max_epochs=32',
                     'train_cfg.val_interval=32', 'param_scheduler.1.end=32')),
    **{
        f'std {n}': _std(n)
        for n in ('LF pseudo PKD', 'LF no labels')
    },
})

# Deployment students (docs/deployment_students.md): RTMDet and YOLOX, each teacher twice
# the student's width (w64 -> w32), on the quick tier's data and schedules.
RUNS.update({
    'RTMDet teacher': RunSpec('configs/rtmdet/rtmdet_w64_synthetic.py'),
    'RTMDet student': RunSpec('configs/rtmdet/rtmdet_w32_synthetic.py'),
    **{
        f'RTMDet {m}':
        RunSpec(
            f'configs/{m.lower()}/{m.lower()}_rtmdet_w64_w32_synthetic.py',
            teacher='RTMDet teacher')
        for m in _RTMDET_METHODS
    },
    'YOLOX teacher': RunSpec('configs/yolox/yolox_w64_synthetic.py'),
    'YOLOX student': RunSpec('configs/yolox/yolox_w32_synthetic.py'),
    **{
        f'YOLOX {m}':
        RunSpec(
            f'configs/{m.lower()}/{m.lower()}_yolox_w64_w32_synthetic.py', teacher='YOLOX teacher')
        for m in ('PKD', 'CWD', 'MGD', 'FGD')
    },
})
RUNS.update({f'RTMDet {m} calibrated': _calibrated(f'RTMDet {m}') for m in _RTMDET_METHODS})
#: calibration with every factor capped at 10 (``max_factor``), for the RTMDet methods whose
#: uncapped factors exceeded 10 (docs/loss_calibration.md); PKD's and CWD's stayed below 2
MAX_FACTOR = ('model.loss_calibration.max_factor=10.0', )
_CAPPED_RTMDET = ('FGD', 'MGD', 'FRS', 'KD')
RUNS.update({
    f'RTMDet {m} calibrated capped': _calibrated(f'RTMDet {m}', MAX_FACTOR)
    for m in _CAPPED_RTMDET
})
# the same cap out of sample, on the GFL pair: FRS's head term is its only factor above 10 there
RUNS['GFL FRS calibrated capped'] = _calibrated('GFL FRS', MAX_FACTOR)
# and on the Mask R-CNN pair, where per='term' sets structured KD's attention factor to 93-219
RUNS['MaskRCNN SKD calibrated per term capped'] = _calibrated('MaskRCNN SKD', PER_TERM + MAX_FACTOR)

# Several teachers (configs/multi_teacher/): PKD from the RetinaNet and the GFL teacher
# together, against PKD from each alone ('PKD' is the RetinaNet teacher's).
_MT = 'configs/multi_teacher/'
RUNS.update({
    'MT PKD from GFL':
    RunSpec(_MT + 'pkd_gfl_r18w48_retina_r18w32_synthetic.py', teacher='GFL teacher'),
    'MT PKD two teachers':
    RunSpec(
        _MT + 'pkd_retina_gfl_r18w48_retina_r18w32_synthetic.py',
        teacher=(('retina', 'teacher'), ('gfl', 'GFL teacher'))),
})

PRESETS: Dict[str, List[str]] = {
    'main': ['teacher', 'student', 'FRS', 'TID', 'SKD'],
    'multi_teacher': ['student', 'PKD', 'MT PKD from GFL', 'MT PKD two teachers'],
    'label_free':
    ['student', 'LF student', 'LF pseudo PKD', 'LF pseudo PKD thr 0.3', 'LF no labels'],
    'standard_label_free':
    ['std student', 'std LF student', 'std LF pseudo PKD', 'std LF no labels'],
    'skd_ablation': [
        'student', 'FRS', 'SKD', 'SKD AT only', 'SKD AM only', 'SKD NLD only', 'SKD AT+AM',
        'SKD AT+AM spatial', 'SKD AT+AM channel', 'SKD authors code'
    ],
    'skd_sensitivity': ['student', 'SKD', 'SKD weights x0.1'],
    'review':
    ['student', 'FRS', 'TID', 'SKD', 'FitNet', 'FGFI', 'DeFeat', 'FGD', 'MGD', 'PKD', 'CWD', 'KD'],
    # GFL pair: the teacher is the 'GFL teacher' run (or --teacher-ckpt)
    'review_gfl': ['GFL student', 'GFL FRS', 'GFL TID', 'GFL LD'],
    # issue 21's methods on the RetinaNet pair
    'review2':
    ['student', 'SSIMKD', 'ReviewKD', 'ICD', 'ICD RM only', 'ICD PFI only', 'PAD', 'GID', 'DRKD'],
    'faster_rcnn': [
        'FRCNN student', 'FRCNN Mimic', 'FRCNN DKD', 'FRCNN PAD', 'FRCNN TADF', 'FRCNN GID',
        'FRCNN ODGK', 'FRCNN GDetKD', 'FRCNN DSIG', 'FRCNN GID feature only',
        'FRCNN GID relation only', 'FRCNN GID response only'
    ],
    # loss calibration against the papers' weights, per pair (issue 23)
    'calibration': [
        'student', 'FRS', 'TID', 'SKD', 'FRS calibrated', 'TID calibrated', 'SKD calibrated',
        'SKD calibrated per term'
    ],
    'calibration_gfl': [
        'GFL student', 'GFL FRS', 'GFL TID', 'GFL LD', 'GFL FRS calibrated', 'GFL TID calibrated',
        'GFL LD calibrated'
    ],
    'calibration_mask_rcnn': [
        'MaskRCNN student', 'MaskRCNN SKD', 'MaskRCNN SKD calibrated',
        'MaskRCNN SKD calibrated per term', 'MaskRCNN SKD calibrated per term capped'
    ],
    'standard_calibration': [
        'std student', 'std FRS', 'std TID', 'std SKD', 'std FRS calibrated', 'std TID calibrated',
        'std SKD calibrated', 'std SKD calibrated per term'
    ],
    'inherit':
    ['FPN96 student', 'FPN96 FGD', 'FPN96 FGD inherit', 'FPN96 MGD', 'FPN96 MGD inherit'],
    'coco_retina': [
        'COCO student', 'COCO FRS', 'COCO TID', 'COCO SKD', 'COCO FitNet', 'COCO FGFI',
        'COCO DeFeat', 'COCO FGD', 'COCO MGD', 'COCO PKD', 'COCO CWD', 'COCO KD'
    ],
    'synthetic_voc': ['SynVOC student', 'SynVOC FRS', 'SynVOC TID'],
    'voc_retina': ['VOC student', 'VOC FRS'],
    # the teacher is the 'MaskRCNN teacher' run (seed 0) unless --teacher-ckpt is given
    'mask_rcnn': ['MaskRCNN student', 'MaskRCNN SKD'],
    'tid_ablation': [
        'student', 'FRS', 'TID', 'TID cls only', 'TID reg only', 'TID raw IoU', 'TID key only',
        'TID weak only'
    ],
    'gfl': ['GFL student', 'GFL FRS', 'GFL TID'],
    'gfl_tid_ablation': [
        'GFL student', 'GFL FRS', 'GFL TID', 'GFL TID cls only', 'GFL TID reg only',
        'GFL TID raw IoU', 'GFL TID key only', 'GFL TID weak only'
    ],
    'tid_readings': [
        'TID', 'TID low band scaled', 'TID gamma 0.025', 'TID gamma 0.25', 'TID key indicator',
        'TID Eq9 as printed', 'TID batch top-k', 'TID Eq9 as printed + low band constant'
    ],
    'tid_low_band': ['student', 'TID', 'TID low band floor'],
    # the standard tier: 3 seeds each (issue 23), then every other method at seed 0
    'standard': ['std teacher', 'std student', 'std FRS', 'std TID', 'std SKD'],
    'standard_review': [
        'std student', 'std FitNet', 'std FGFI', 'std DeFeat', 'std FGD', 'std MGD', 'std PKD',
        'std CWD', 'std KD'
    ],
    'standard_tid_ablation': ['std student', 'std TID'] +
    [f'std TID {n}' for n in ('cls only', 'reg only', 'raw IoU', 'key only', 'weak only')],
    'standard_skd_ablation': [
        'std student', 'std SKD', 'std SKD AT only', 'std SKD AM only', 'std SKD NLD only',
        'std SKD AT+AM', 'std SKD AT+AM spatial', 'std SKD AT+AM channel', 'std SKD weights x0.1'
    ],
    'standard_weak_teacher': [
        'std weak teacher', 'std student', 'std FRS from weak teacher', 'std TID from weak teacher',
        'std SKD from weak teacher'
    ],
    # the loss calibration with the weak teacher: does it keep structured KD above its student?
    'standard_weak_teacher_calibration': [
        'std weak teacher', 'std student', 'std SKD from weak teacher',
        'std SKD from weak teacher calibrated', 'std SKD from weak teacher calibrated per term'
    ],
    'standard_gfl':
    ['std GFL teacher', 'std GFL student', 'std GFL FRS', 'std GFL TID', 'std GFL LD'],
    'standard_calibration_gfl': [
        'std GFL student', 'std GFL FRS', 'std GFL TID', 'std GFL LD', 'std GFL FRS calibrated',
        'std GFL TID calibrated', 'std GFL LD calibrated'
    ],
    # cross-family pairs: the students alone, then each distilled from the other family's
    # teacher ('FRCNN teacher' / 'teacher' runs, seed 0, unless --teacher-ckpt is given)
    'cross_family': [
        'student', 'PKD from FRCNN', 'CWD from FRCNN', 'GFL student', 'GFL PKD from Retina',
        'GFL CWD from Retina'
    ],
    # deployment students: the teachers are the 'RTMDet teacher' / 'YOLOX teacher' runs
    # (seed 0) unless --teacher-ckpt is given
    'deployment': [
        'RTMDet student', 'RTMDet PKD', 'RTMDet CWD', 'RTMDet MGD', 'RTMDet FGD', 'RTMDet FRS',
        'RTMDet KD', 'YOLOX student', 'YOLOX PKD', 'YOLOX CWD', 'YOLOX MGD', 'YOLOX FGD'
    ],
    # the loss calibration on the RTMDet pair (docs/loss_calibration.md)
    'deployment_calibration':
    ['RTMDet student'] + [f'RTMDet {m}{c}' for m in _RTMDET_METHODS for c in ('', ' calibrated')],
    'deployment_calibration_capped':
    ['RTMDet student'] + [f'RTMDet {m} calibrated capped' for m in _CAPPED_RTMDET],
    'calibration_gfl_capped':
    ['GFL student', 'GFL FRS', 'GFL FRS calibrated', 'GFL FRS calibrated capped'],
}
_FIELDS = RunSpec._fields


def run_dir(work_dir: str, name: str, seed: int) -> str:
    """The work dir of run ``name`` at ``seed``: ``<work_dir>/<name>/seed<k>``, spaces
    in the name as ``_``, dots dropped."""
    return osp.join(work_dir, name.replace(' ', '_').replace('.', ''), f'seed{seed}')


def run_seeds(spec: RunSpec, seeds: Optional[Sequence[int]] = None) -> List[int]:
    """The seeds of a run: ``seeds`` (the command line's) if given, else its own, else
    :data:`DEFAULT_SEEDS`."""
    return list(seeds or spec.seeds or DEFAULT_SEEDS)


def spec_teachers(spec: RunSpec) -> Dict[str, str]:
    """``{Distiller teacher name: run}`` of ``spec`` (``'teacher'`` for a single run name)."""
    if not spec.teacher:
        return {}
    return {'teacher': spec.teacher} if isinstance(spec.teacher, str) else dict(spec.teacher)


def teacher_runs(runs: Dict[str, RunSpec]) -> set:
    """The runs another run of ``runs`` takes its teacher from (trained at seed 0 only)."""
    return {run for spec in runs.values() for run in spec_teachers(spec).values()}


def _seeds(value, where: str) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise MatrixError(f'{where}: field \'seeds\' must be a non-empty list of integers, '
                          f'got {value!r}.')
    return tuple(value)


def _spec(name, entry, where: str) -> RunSpec:
    """Check one entry of a matrix file and make it a :class:`RunSpec`."""
    where = f'{where}: run {name!r}'
    if not isinstance(name, str) or not name.strip():
        raise MatrixError(f'{where}: run names must be non-empty strings.')
    if not isinstance(entry, dict):
        raise MatrixError(f'{where}: expected a dict with a \'config\' field, got {entry!r}.')
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise MatrixError(f'{where}: unknown field(s) {unknown}; the fields are '
                          f'{list(_FIELDS)}.')
    config = entry.get('config')
    if not isinstance(config, str) or not config:
        raise MatrixError(f'{where}: field \'config\' is missing; give the path of the '
                          f'run\'s config.')
    if '::' not in config and not osp.isfile(config):
        raise MatrixError(f'{where}: field \'config\': {config} does not exist (paths are '
                          f'relative to the directory the benchmark runs in).')
    options = entry.get('cfg_options', ())
    if not isinstance(options, (list, tuple)) or \
            not all(isinstance(o, str) and '=' in o for o in options):
        raise MatrixError(f'{where}: field \'cfg_options\' must be a list of \'key=value\' '
                          f'strings (as tools/train.py --cfg-options), got {options!r}.')
    overlays = entry.get('overlays', ())
    if not isinstance(overlays, (list, tuple)) or not all(isinstance(o, str) for o in overlays):
        raise MatrixError(f'{where}: field \'overlays\' must be a list of config paths, got '
                          f'{overlays!r}.')
    for overlay in overlays:
        if not osp.isfile(overlay):
            raise MatrixError(f'{where}: field \'overlays\': {overlay} does not exist (paths are '
                              f'relative to the directory the benchmark runs in).')
    teacher = entry.get('teacher')
    if isinstance(teacher, dict) and teacher and all(
            isinstance(k, str) and isinstance(v, str) for k, v in teacher.items()):
        teacher = tuple(teacher.items())
    elif teacher is not None and not isinstance(teacher, str):
        raise MatrixError(f'{where}: field \'teacher\' must be a run name, or a dict teacher '
                          f'name -> run name for several teachers, got {teacher!r}.')
    if entry.get('teacher_ckpt') is not None and not isinstance(entry['teacher_ckpt'], str):
        raise MatrixError(f'{where}: field \'teacher_ckpt\' must be a string, got '
                          f'{entry["teacher_ckpt"]!r}.')
    seeds = _seeds(entry['seeds'], where) if entry.get('seeds') is not None else None
    return RunSpec(config, tuple(options), seeds, teacher, entry.get('teacher_ckpt'),
                   tuple(overlays))


def load_matrix(path: str) -> Dict[str, RunSpec]:
    """Read a user's matrix file (module doc) into ``{run name: RunSpec}``.

    Raises:
        MatrixError: the file has no ``runs``, or an entry is wrong; the message
            names the file, the run and the field.
    """
    from mmengine.config import Config
    where = f'benchmark matrix {path}'
    if not osp.isfile(path):
        raise MatrixError(f'{where}: file not found.')
    cfg = Config.fromfile(path).to_dict()
    runs = cfg.get('runs')
    if not isinstance(runs, dict) or not runs:
        raise MatrixError(f'{where}: needs a non-empty dict `runs = {{run name: '
                          f'dict(config=...), ...}}`.')
    default = _seeds(cfg['seeds'], where) if cfg.get('seeds') is not None else None
    out, dirs = {}, {}
    for name, entry in runs.items():
        spec = _spec(name, entry, where)
        out[name] = spec._replace(seeds=spec.seeds or default)
        folder = run_dir('', name, 0)
        if folder in dirs:
            raise MatrixError(f'{where}: runs {dirs[folder]!r} and {name!r} would share the '
                              f'work dir {osp.dirname(folder)}; rename one.')
        dirs[folder] = name
    for name, spec in out.items():
        for run in spec_teachers(spec).values():
            if run not in out or run == name:
                raise MatrixError(f'{where}: run {name!r}: field \'teacher\': {run!r} '
                                  f'is not another run of this matrix; name one of '
                                  f'{sorted(set(out) - {name})} or give teacher_ckpt.')
    return out
