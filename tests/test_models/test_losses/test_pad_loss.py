"""PAD: the uncertainty-weighted Mimic and FGFI losses on hand-made features (values by
hand), equality with the inner loss at sigma = 1, and Distiller steps on tiny Faster R-CNN
(Mimic + PAD) and RetinaNet (FGFI + PAD) pairs."""
import contextlib
import math
from types import SimpleNamespace

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses import PADLoss
from mmkd_det.registry import MODELS
from tests.conftest import save_weights, tiny_model_cfg

# Mimic on one stride-1 level, RoIAlign 2 x 2 with one sample per bin (see test_mimic_loss)
ALIGN = dict(type='SingleRoIExtractor',
             roi_layer=dict(type='RoIAlign', output_size=2, sampling_ratio=1, aligned=True),
             out_channels=1, featmap_strides=[1])


def _x_map(scale=1.0):
    return (scale * torch.arange(8.)).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()


def _pad(inner, **cfg):
    loss = MODELS.build(dict(type='PADLoss', loss=inner, **cfg))
    return loss


def _set_log_var(loss, value):
    with torch.no_grad():
        loss.branch.conv.bias.fill_(value)


def test_mimic_pad_hand_values():
    """Mimic Eq. 3 on two GT RoIs gives 16.5 (test_mimic_loss: squared errors 13 + 53
    over 2 x 2 bins, / 2N = 4). PAD with s = log 2 everywhere: 8 elements (2 RoIs x 1
    channel x 2 x 2 bins): (66 / 2 + 8 log 2) / 4 = 8.25 + 2 log 2."""
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 4., 4.], [2., 0., 6., 2.]]),
                      labels=torch.tensor([0, 1]))
    inner = dict(type='MimicLoss', rois='gt', normalize='none', roi_extractor=ALIGN,
                 adapter=None, loss_weight=2.0)
    loss = _pad(inner)
    loss.setup(dict(s_feats=[(1, 1, 8, 8)], t_feats=[(1, 1, 8, 8)]), 'pad')
    kw = dict(gt_instances=[gt], student=None, teacher=None)
    assert loss.loss_weight == 2.0  # the inner loss's weight by default
    assert loss([_x_map()], [_x_map(2.0)], **kw).item() == pytest.approx(2.0 * 16.5)
    _set_log_var(loss, math.log(2.0))
    assert loss([_x_map()], [_x_map(2.0)], **kw).item() == pytest.approx(
        2.0 * (8.25 + 2 * math.log(2.0)))
    # Eq. 5 (m = 4): plain 4.125; with s = log 2: (66 / 2 + 8 log 2) / (4 x 4)
    loss = _pad(dict(inner, normalize='dims'), loss_weight=1.0, granularity='element')
    loss.setup(dict(s_feats=[(1, 1, 8, 8)], t_feats=[(1, 1, 8, 8)]), 'pad')
    assert loss([_x_map()], [_x_map(2.0)], **kw).item() == pytest.approx(4.125)
    _set_log_var(loss, math.log(2.0))
    assert loss([_x_map()], [_x_map(2.0)], **kw).item() == pytest.approx(
        (33 + 8 * math.log(2.0)) / 16)


class HandAnchors:
    """Level 0: 4x4 cells of stride 8 with an 8x8 and a 16x16 anchor; level 1: 2x2
    cells of stride 16 with a 16x16 anchor (as test_fgfi_loss)."""
    strides = [(8, 8), (16, 16)]
    num_levels = 2

    def grid_priors(self, featmap_sizes, dtype=torch.float32, device='cpu'):
        lvl0 = []
        for i in range(4):
            for j in range(4):
                lvl0 += [[8 * j, 8 * i, 8 * j + 8, 8 * i + 8],
                         [8 * j - 4, 8 * i - 4, 8 * j + 12, 8 * i + 12]]
        lvl1 = [[16 * j, 16 * i, 16 * j + 16, 16 * i + 16] for i in range(2) for j in range(2)]
        return [torch.tensor(lvl0, dtype=dtype, device=device),
                torch.tensor(lvl1, dtype=dtype, device=device)]


HAND_STUDENT = SimpleNamespace(bbox_head=SimpleNamespace(prior_generator=HandAnchors()))
METAS = [dict(batch_input_shape=(32, 32))] * 3
GT = [InstanceData(bboxes=torch.tensor(b, dtype=torch.float32).view(-1, 4),
                   labels=torch.zeros(len(b), dtype=torch.long))
      for b in ([[0, 0, 8, 8], [8, 8, 24, 24]], [[16, 16, 32, 32]], [])]


def _fgfi_pad(**cfg):
    inner = dict(type='FGFILoss', adapter=None, normalize=cfg.pop('normalize', 'all'))
    loss = _pad(inner, **cfg)
    shapes = [(3, 2, 4, 4), (3, 2, 2, 2)]
    loss.setup(dict(s_feats=shapes, t_feats=shapes), 'pad')
    return loss


def test_fgfi_pad_hand_values():
    """FGFI masks (test_fgfi_loss): 5 locations of level 0, 1 of level 1. Teacher 0,
    student (1, 2) per location on level 0 (squared error 1 + 4 = 5) and (3, 3) on
    level 1 (18). Plain: (25 + 18) / (2 x 6). PAD, s = log 2 per location (shared by
    the 2 channels): (43 / 2 + 6 x 2 log 2) / 12 = 43 / 24 + log 2."""
    t_feats = [torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 2, 2)]
    s_feats = [torch.cat([torch.ones(3, 1, 4, 4), torch.full((3, 1, 4, 4), 2.0)], 1),
               torch.full((3, 2, 2, 2), 3.0)]
    kw = dict(gt_instances=GT, student=HAND_STUDENT, batch_img_metas=METAS)
    loss = _fgfi_pad()
    assert loss(s_feats, t_feats, **kw).item() == pytest.approx(43 / 12)
    _set_log_var(loss, math.log(2.0))
    assert loss(s_feats, t_feats, **kw).item() == pytest.approx(43 / 24 + math.log(2.0))
    # per-level normaliser: 25 / 20 + 10 log 2 / 10 + 18 / 4 + 2 log 2 / 2
    loss = _fgfi_pad(normalize='level', loss_weight=0.5)
    _set_log_var(loss, math.log(2.0))
    assert loss(s_feats, t_feats, **kw).item() == pytest.approx(
        0.5 * (5.75 + 2 * math.log(2.0)))
    # no GT in the batch: zero
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 3
    assert _fgfi_pad()(s_feats, t_feats, gt_instances=empty, student=HAND_STUDENT,
                       batch_img_metas=METAS).item() == 0.0


def test_errors():
    with pytest.raises(TypeError, match='config dict'):
        PADLoss(loss='MimicLoss')
    with pytest.raises(TypeError, match='no elementwise'):
        PADLoss(loss=dict(type='FitNetLoss'))
    with pytest.raises(ValueError, match='PADLoss itself'):
        PADLoss(loss=dict(type='PADLoss', loss=dict(type='MimicLoss')))
    with pytest.raises(ValueError, match='granularity'):
        PADLoss(loss=dict(type='MimicLoss'), granularity='image')
    with pytest.raises(RuntimeError, match='setup'):
        feats = [torch.zeros(1, 1, 4, 4)]
        PADLoss(loss=dict(type='MimicLoss', rois='gt'))(feats, feats)


def _distiller(tmp_path, kind, inner, recorders):
    ckpt = save_weights(tiny_model_cfg(kind, 16), str(tmp_path / 't.pth'), seed=1)
    return MODELS.build(
        dict(type='Distiller', student=tiny_model_cfg(kind, 8), teacher=tiny_model_cfg(kind, 16),
             teacher_ckpt=ckpt, recorders=recorders,
             distill_losses=dict(loss_pad=dict(type='PADLoss', loss=inner,
                                               branch_init='default')),
             probe_size=64))


def _data(model, num_items=(3, 1)):
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=list(num_items),
                          num_classes=3)
    return model.data_preprocessor(data, True)


@pytest.mark.parametrize('kind,inner,recorders', [
    ('faster', dict(type='MimicLoss'), dict(fpn=dict(source='neck', levels=[0, 1, 2, 3]))),
    ('retina', dict(type='FGFILoss', loss_weight=0.01), dict(fpn=dict(source='neck'))),
])
def test_distiller_step_and_sigma_one_equals_inner(tmp_path, kind, inner, recorders):
    """One Distiller step: finite, gradients reach the student, the inner loss's adapters
    and the variance branch, not the teacher. With the branch zeroed (sigma = 1) the
    loss on the same records equals the inner loss's own forward."""
    MessageHub.get_current_instance().update_info('iter', 0)
    d = _distiller(tmp_path, kind, inner, recorders)
    loss = d.distill_losses['loss_pad']
    assert loss.branch.conv.out_channels == 1 and loss.branch.conv.in_channels == 32
    data = _data(d)
    losses = d.loss(data['inputs'], data['data_samples'])
    value = losses['distill.loss_pad']
    assert torch.isfinite(value)
    value.backward()
    assert d.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert loss.branch.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in loss.inner.adapters.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())

    # sigma = 1: the same records through PAD and through the inner loss's forward
    with torch.no_grad():
        loss.branch.conv.weight.zero_()
        loss.branch.conv.bias.zero_()
    gts = [s.gt_instances for s in data['data_samples']]
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        t_feats = list(d.teacher.extract_feat(data['inputs']))
    n = 4 if kind == 'faster' else 5
    kw = dict(gt_instances=gts, student=d.student)
    kw.update(teacher=d.teacher) if kind == 'faster' else kw.update(batch_img_metas=metas)
    values = []
    for fn in (loss, loss.inner):
        context = getattr(fn, 'student_context', None)
        with context(d.student) if context else contextlib.nullcontext():
            # the student's task loss: Mimic's capture of its RPN proposals
            d.student.loss(data['inputs'], data['data_samples'])
        s_feats = list(d.student.extract_feat(data['inputs']))[:n]
        values.append(fn(s_feats, t_feats[:n], **kw))
    assert values[0].item() == pytest.approx(values[1].item(), rel=1e-5)
    assert values[0].item() > 0
