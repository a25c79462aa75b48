"""Time one PKD distillation step: mmkd_det's Distiller against mmrazor 1.0.0's
``SingleTeacherDistill`` on the same models, weights and batch.

Both wrap the same student and teacher (built from the synthetic RetinaNet
configs; the student has the teacher's width so PKD needs no adapter, as in
mmrazor's configs) and compute the student's losses plus PKD on the four FPN
levels. The steps (forward + backward) are interleaved on one fixed training
batch; the PKD values are printed side by side as a check that both compute the
same thing. mmrazor's ``SingleTeacherDistill`` runs the teacher's whole
``loss`` (its head and its losses, discarded); the Distiller runs only the
teacher's backbone and neck. (mmrazor's ``FpnTeacherDistill`` would skip the
teacher head too; the issue names ``SingleTeacherDistill``.)

``pair='full'``: mmdet's RetinaNet R101 teacher and R50 student (256-channel
FPNs, COCO heads) on a batch of ``batch`` random 1333x800 images with 7 random
boxes each; both models start from random weights (the teacher's are saved
once and loaded by both wrappers), which does not change the work done.

The command line is ``tools/analysis_tools/compare_mmrazor_step.py``.
"""
import copy
import os.path as osp
import statistics as st
import tempfile
import time
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkd_det.apis import first_batch

#: the synthetic pair's model (student and teacher)
TEACHER = 'configs/retinanet/retinanet_r18w48_synthetic.py'
FULL = dict(
    student='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    teacher='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py')


def full_pair(batch: int, size=(800, 1333), boxes: int = 7, seed: int = 0, num_classes: int = 80):
    """Student and teacher model configs, a teacher checkpoint and a data batch
    (``pair='full'``): ``batch`` random uint8 images of ``size`` (H, W) with
    ``boxes`` random boxes of ``num_classes`` classes each."""
    from mmdet.structures import DetDataSample
    from mmengine.hub import get_config
    from mmengine.structures import InstanceData

    from mmkd_det.registry import MODELS
    cfgs = {}
    for role, path in FULL.items():
        cfgs[role] = get_config(path).model
        cfgs[role].backbone.init_cfg = None  # no download: random weights
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        torch.manual_seed(seed)
        teacher = MODELS.build(copy.deepcopy(cfgs['teacher']))
        teacher.init_weights()  # the heads' prior-probability bias, as in training
    ckpt = osp.join(tempfile.mkdtemp(), 'teacher_r101_random.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    g = torch.Generator().manual_seed(seed)
    h, w = size
    data = dict(inputs=[], data_samples=[])
    for _ in range(batch):
        data['inputs'].append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        xy = torch.rand(boxes, 2, generator=g) * torch.tensor([0.7 * w, 0.7 * h])
        wh = torch.rand(boxes, 2, generator=g) * torch.tensor([0.3 * w, 0.3 * h]) + 8
        sample = DetDataSample(
            metainfo=dict(img_shape=size, ori_shape=size, scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, num_classes, (boxes, ), generator=g))
        data['data_samples'].append(sample)
    return cfgs['student'], cfgs['teacher'], ckpt, data


def compare_pkd_step(pair: str = 'synthetic',
                     teacher_ckpt: Optional[str] = None,
                     batch: int = 2,
                     size: Sequence[int] = (800, 1333),
                     breakdown: bool = False,
                     iters: int = 20,
                     warmup: int = 3,
                     loss_weight: float = 10.0,
                     cfg_options: Optional[dict] = None,
                     distiller_options: Optional[dict] = None,
                     keep_heap: bool = False) -> dict:
    """Time the PKD step of the Distiller against mmrazor's (module doc).

    Args:
        pair (str): ``'synthetic'`` (the R18-w48 RetinaNet of :data:`TEACHER` as
            student and teacher, ``teacher_ckpt`` its weights) or ``'full'``
            (RetinaNet R101 -> R50, random weights, :func:`full_pair`).
        teacher_ckpt (str, optional): ``pair='synthetic'``: the teacher weights.
        batch (int): ``pair='full'``: images per batch.
        size (Sequence[int]): ``pair='full'``: image size (H, W).
        breakdown (bool): also time each student step alone and each teacher pass.
        iters (int): timed iterations; ``warmup`` (int) more run first.
        loss_weight (float): PKD's loss weight.
        cfg_options (dict, optional): overrides of the synthetic RetinaNet config.
        distiller_options (dict, optional): extra Distiller arguments.
        keep_heap (bool): only recorded in the result.

    Returns:
        dict: the PKD values of both, mean and per-iteration seconds and ratios.
    """
    import mmkd_det  # noqa: F401
    from mmkd_det.compat import import_mmrazor_models
    from mmkd_det.registry import MODELS
    import_mmrazor_models()
    from mmrazor.registry import MODELS as RAZOR_MODELS

    if pair == 'full':
        student_cfg, teacher_cfg, teacher_ckpt, data = full_pair(batch, tuple(size))
    else:
        cfg = Config.fromfile(TEACHER)
        cfg.merge_from_dict(cfg_options or {})
        student_cfg, teacher_cfg = cfg.model, cfg.model
        data = first_batch(cfg.train_dataloader)
    levels = [0, 1, 2, 3]
    ours_cfg = dict(
        type='Distiller',
        student=copy.deepcopy(student_cfg),
        teacher=copy.deepcopy(teacher_cfg),
        teacher_ckpt=teacher_ckpt,
        recorders=dict(fpn=dict(source='neck', levels=levels)),
        distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=loss_weight)),
        **(distiller_options or {}))
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        torch.manual_seed(0)
        ours = MODELS.build(ours_cfg)
        if pair == 'full':
            ours.init_weights()

    def mmdet(cfg):
        return dict(copy.deepcopy(cfg.to_dict()), _scope_='mmdet')

    razor_cfg = dict(
        type='SingleTeacherDistill',
        architecture=mmdet(student_cfg),
        teacher=mmdet(teacher_cfg),
        teacher_ckpt=teacher_ckpt,
        distiller=dict(
            type='ConfigurableDistiller',
            student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            distill_losses={
                f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=loss_weight)
                for i in levels
            },
            loss_forward_mappings={
                f'loss_pkd_fpn{i}':
                dict(
                    preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                    preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
                for i in levels
            }))
    with DefaultScope.overwrite_default_scope('mmrazor'):
        razor = RAZOR_MODELS.build(razor_cfg)
    razor.student.load_state_dict(ours.student.state_dict())  # same student weights
    ours.train()
    razor.train()
    batch = ours.data_preprocessor(copy.deepcopy(data), True)
    inputs, samples = batch['inputs'], batch['data_samples']
    r_batch = razor.data_preprocessor(copy.deepcopy(data), True)

    def step(model, x, s):
        losses = model.loss(x, s)
        total, _ = model.parse_losses(losses)
        model.zero_grad(set_to_none=True)
        total.backward()
        return losses

    check = step(ours, inputs, samples)['distill.loss_pkd'].item()
    r_losses = step(razor, r_batch['inputs'], r_batch['data_samples'])
    r_check = sum(v.item() for k, v in r_losses.items() if 'loss_pkd' in k)
    fns = dict(
        mmkd_det=lambda: step(ours, inputs, samples),
        mmrazor=lambda: step(razor, r_batch['inputs'], r_batch['data_samples']))
    if breakdown:

        def razor_teacher():
            with torch.no_grad():
                razor.teacher(r_batch['inputs'], r_batch['data_samples'], mode='loss')

        fns.update({
            'mmkd_det student step':
            lambda: step(ours.student, inputs, samples),
            'mmrazor student step':
            lambda: step(razor.student, r_batch['inputs'], r_batch['data_samples']),
            'mmkd_det teacher forward':
            lambda: (ours._teacher_forward(inputs), ours.teacher_recorder.reset()),
            'mmrazor teacher forward (loss mode)':
            razor_teacher
        })
    times = {k: [] for k in fns}
    names = list(fns)
    for it in range(warmup + iters):
        shift = it % len(names)  # rotate the order: no step always follows the same one
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            if it >= warmup:
                times[name].append(time.perf_counter() - start)
    mean = {k: st.mean(v) for k, v in times.items()}
    # per iteration: the two steps ran back to back, so a slow spell of the
    # machine weighs on both
    paired = st.median(a / b for a, b in zip(times['mmkd_det'], times['mmrazor']))
    res = dict(
        pair=pair,
        threads=torch.get_num_threads(),
        batch=list(inputs.shape),
        iters=iters,
        keep_heap=keep_heap,
        pkd_value=dict(mmkd_det=check, mmrazor=r_check),
        mean_seconds=mean,
        ratio_mmkd_det_over_mmrazor=mean['mmkd_det'] / mean['mmrazor'],
        median_per_iteration_ratio=paired,
        samples_seconds=times)
    if breakdown:
        # no PKD and no Distiller bookkeeping at all: our student step + teacher pass
        res['floor_over_mmrazor'] = (mean['mmkd_det student step'] +
                                     mean['mmkd_det teacher forward']) / mean['mmrazor']
    return res


def compare_summary(res: dict) -> str:
    """The lines printed for a :func:`compare_pkd_step` result."""
    v, mean = res['pkd_value'], res['mean_seconds']
    lines = [f'PKD on the first batch: mmkd_det {v["mmkd_det"]:.6f}, mmrazor {v["mmrazor"]:.6f}']
    lines += [f'{k:>9}: {1000 * s:8.1f} ms per step' for k, s in mean.items()]
    lines.append(f'mmkd_det / mmrazor = {res["ratio_mmkd_det_over_mmrazor"]:.3f} (means), '
                 f'{res["median_per_iteration_ratio"]:.3f} (median per iteration)' +
                 (f'; floor (student step + teacher pass) / mmrazor = '
                  f'{res["floor_over_mmrazor"]:.3f}' if 'floor_over_mmrazor' in res else ''))
    return '\n'.join(lines)
