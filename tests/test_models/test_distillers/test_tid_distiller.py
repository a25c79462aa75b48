"""TID end to end through the Distiller on tiny real mmdet detectors."""
import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.structures import InstanceData

from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def tid_distiller_cfg(kind, teacher_ckpt, t_width=16, s_width=8, **loss_kw):
    return dict(
        type='Distiller',
        student=tiny_model_cfg(kind, s_width),
        teacher=tiny_model_cfg(kind, t_width),
        teacher_ckpt=teacher_ckpt,
        recorders=dict(
            fpn=dict(source='neck'),
            cls=dict(source='bbox_head', index=0),
            reg=dict(source='bbox_head', index=1)),
        distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=1.0, **loss_kw)),
        probe_size=64)


def tid_batch(size=64, seed=0):
    """Image 0: three GT boxes, one touching the left/top image border; image 1: none."""
    torch.manual_seed(seed)
    data = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, size, size)] * 2, num_items=[3, 0], num_classes=3)
    data['data_samples'][0].gt_instances = InstanceData(
        bboxes=torch.tensor([[0.0, 0.0, 20.0, 30.0], [24.0, 16.0, 56.0, 48.0],
                             [40.0, 44.0, 52.0, 60.0]]),
        labels=torch.tensor([1, 2, 1]))
    data['data_samples'][1].gt_instances = InstanceData(
        bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return data


KINDS = [('retina', {}), ('gfl', {}), ('atss', {}), ('fcos', dict(iou_thrs=(0.5, 0.4)))]


@pytest.mark.parametrize('kind,loss_kw', KINDS, ids=[k for k, _ in KINDS])
def test_tid_loss_trains_student_and_adapters_only(kind, loss_kw, weights):
    ckpt = weights(tiny_model_cfg(kind, 16))
    d = MODELS.build(tid_distiller_cfg(kind, ckpt, **loss_kw))
    d.train()
    losses = d(**d.data_preprocessor(tid_batch(), True), mode='loss')
    value = losses['distill.loss_tid']
    assert value.dim() == 0 and torch.isfinite(value) and value.item() >= 0
    assert 'loss_cls' in losses
    d.zero_grad()
    value.backward()
    adapters = list(d.distill_losses['loss_tid'].adapters.parameters())
    assert adapters and all(p.grad is not None for p in adapters)
    student_grads = [p.grad for p in d.student.neck.parameters()]
    assert all(g is not None for g in student_grads)
    if value.item() > 0:
        assert any(g.abs().sum() > 0 for g in student_grads)
        assert any(p.grad.abs().sum() > 0 for p in adapters)
    assert all(not p.requires_grad and p.grad is None for p in d.teacher.parameters())


@pytest.mark.parametrize('kind', ['retina', 'gfl'])
def test_teacher_equal_to_student_has_no_weak_area(kind, weights, monkeypatch):
    ckpt = weights(tiny_model_cfg(kind, 8))
    cfg = tid_distiller_cfg(kind, ckpt, t_width=8, s_width=8)
    d = MODELS.build(dict(cfg, fuse_teacher_bn=False))  # teacher weights = student's
    d.student.load_state_dict(d.teacher.state_dict())
    d.eval()  # BN on running stats in both models: identical head outputs
    loss = d.distill_losses['loss_tid']
    seen = []
    original = loss.masks

    def record(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(loss, 'masks', record)
    losses = d(**d.data_preprocessor(tid_batch(), True), mode='loss')
    assert torch.isfinite(losses['distill.loss_tid'])
    assert len(seen) == 1
    masks = seen[0]
    assert torch.equal(masks['score_t'], masks['score_s'])
    assert masks['weak'].sum() == 0
    assert masks['key'].sum() > 0


def test_visual_maps_give_per_level_tid_masks(weights):
    """loss_visual_maps (the mask visualisation tool) returns TID's four Fig. 4
    maps per FPN level, at each level's H, W, equal to masks() split by level."""
    from mmkd_det.models.distillers import loss_visual_maps
    from mmkd_det.models.losses.tid_loss import split_levels
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(tid_distiller_cfg('retina', ckpt, low_band='scaled'))
    d.eval()
    batch = d.data_preprocessor(tid_batch(), False)
    maps = loss_visual_maps(d, batch['inputs'], batch['data_samples'])['loss_tid']
    assert list(maps) == [
        'key area (Eq. 4)', 'weak area (Eq. 5)', 'V_information (Eq. 9)', 'M (Eq. 11)'
    ]
    feats = d.student.extract_feat(batch['inputs'])
    for levels in maps.values():
        assert [tuple(m.shape) for m in levels] == [(2, *f.shape[-2:]) for f in feats]
    # the image without GT has no information value and so (literal Eq. 11) M = 0
    assert all(float(m[1].abs().sum()) == 0 for m in maps['M (Eq. 11)'])
    assert any(float(m[0].sum()) > 0 for m in maps['V_information (Eq. 9)'])
    # records were released after the call
    assert all(not buf for buf in d.student_recorder._buffers.values())
    with torch.no_grad():
        assert torch.equal(
            split_levels(
                torch.cat([m.flatten(1) for m in maps['M (Eq. 11)']], 1),
                [m.shape[-2:] for m in maps['M (Eq. 11)']])[0], maps['M (Eq. 11)'][0])


@pytest.mark.parametrize('kind', ['retina', 'gfl'])
def test_batch_without_any_gt(kind, weights):
    """No GT in the whole batch: V_information is 0 everywhere, so every value is
    in the low band. Literal Eq. 11 (M = 0.05 x 0): the loss is exactly 0, not
    NaN. Default low_band='constant': every location weighs 0.05, so the loss is
    the plain mean over locations of the channel-summed squared difference."""
    ckpt = weights(tiny_model_cfg(kind, 16))
    d = MODELS.build(tid_distiller_cfg(kind, ckpt, low_band='scaled'))
    d.train()
    data = tid_batch()
    data['data_samples'][0].gt_instances = InstanceData(
        bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    assert losses['distill.loss_tid'].item() == 0.0

    d2 = MODELS.build(tid_distiller_cfg(kind, ckpt))
    d2.train()
    batch = d2.data_preprocessor(data, True)
    with d2.student_recorder:
        d2.student.loss(batch['inputs'], batch['data_samples'])
    d2._teacher_forward(batch['inputs'])
    kw = d2._loss_kwargs('loss_tid', batch['data_samples'])
    loss = d2.distill_losses['loss_tid']
    s_feats = loss.adapt('s_feats', kw['s_feats'], kw['t_feats'])
    sq = torch.cat([(t - s).pow(2).sum(1).flatten(1) for s, t in zip(s_feats, kw['t_feats'])], 1)
    torch.testing.assert_close(loss(**kw), sq.mean())
