"""G-DetKD: SGFI level weights / imitation and CKD by hand, CKD against a per-instance
loop, the whole loss on tiny Faster R-CNN models against per-RoI / per-level loops, the
memory ring, options and errors, and Distiller steps on a tiny Faster R-CNN pair."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import RoIAlign
from mmdet.testing import demo_mm_inputs
from mmengine.structures import InstanceData

from mmkd_det.models.losses import GDetKDLoss
from mmkd_det.models.losses.gdetkd_loss import ckd_loss, sgfi_level_weights, sgfi_loss
from mmkd_det.registry import MODELS
from tests.conftest import tiny_loss_distiller, tiny_model_cfg


def test_sgfi_by_hand():
    """Two levels, one RoI: phi(S^0) = [1, 0], phi(S^1) = [0, 1], phi(T) = [1, 0], tau = 1:
    logits 1, 0 -> w0 = 1 / (1 + e^-1), w1 = 1 - w0. S^0 = 1, S^1 = 3, T = 2 (1 x 1 maps):
    fused = w0 + 3 (1 - w0) = 3 - 2 w0, MSE = (2 w0 - 1)^2."""
    w = sgfi_level_weights(torch.tensor([[[1., 0.]], [[0., 1.]]]), torch.tensor([[1., 0.]]),
                           torch.tensor(1.0))
    w0 = 1 / (1 + math.exp(-1))
    assert torch.allclose(w, torch.tensor([[w0], [1 - w0]]))
    s_levels = torch.tensor([1., 3.]).view(2, 1, 1, 1, 1)
    value = sgfi_loss(s_levels, torch.full((1, 1, 1, 1), 2.0), w)
    assert value.item() == pytest.approx((2 * w0 - 1)**2)
    # tau = 0.5 doubles the logits
    w = sgfi_level_weights(torch.tensor([[[1., 0.]], [[0., 1.]]]), torch.tensor([[1., 0.]]),
                           torch.tensor(0.5))
    assert w[0, 0].item() == pytest.approx(1 / (1 + math.exp(-2)))


def test_ckd_by_hand():
    """q = k = e1, e2, gamma = 1: logits [[1, 0], [0, 1]].
    'all': log(e + 1) - 1 per row. 'negatives': log(e^0) - 1 = -1.
    Ignoring the pair (0, 1): 'all' -> log(e) - 1 = 0; 'negatives' -> no key, rows left out.
    Memory [e1]: row 0 adds e^1, row 1 adds e^0."""
    q = torch.eye(2)
    none = torch.zeros(2, 2, dtype=torch.bool)
    pair = torch.tensor([[False, True], [True, False]])
    e = math.e
    assert ckd_loss(q, q, none, None, 1.0, 'all').item() == pytest.approx(math.log(e + 1) - 1)
    assert ckd_loss(q, q, none, None, 1.0, 'negatives').item() == pytest.approx(-1.0)
    assert ckd_loss(q, q, pair, None, 1.0, 'all').item() == pytest.approx(0.0, abs=1e-6)
    assert ckd_loss(q, q, pair, None, 1.0, 'negatives').item() == 0.0
    mem = torch.tensor([[1., 0.]])
    expected = ((math.log(2 * e + 1) - 1) + (math.log(e + 2) - 1)) / 2
    assert ckd_loss(q, q, none, mem, 1.0, 'all').item() == pytest.approx(expected)
    with pytest.raises(ValueError, match='ckd_denominator'):
        ckd_loss(q, q, none, None, 1.0, 'pos')


@pytest.mark.parametrize('denominator', ['all', 'negatives'])
def test_ckd_against_loop(denominator):
    torch.manual_seed(0)
    q = F.normalize(torch.randn(5, 4), dim=1)
    k = F.normalize(torch.randn(5, 4), dim=1)
    mem = F.normalize(torch.randn(3, 4), dim=1)
    ignore = torch.rand(5, 5) > 0.6
    got = ckd_loss(q, k, ignore, mem, 0.07, denominator)
    total = 0.0
    for i in range(5):
        pos = math.exp(torch.dot(q[i], k[i]).item() / 0.07)
        den = pos if denominator == 'all' else 0.0
        for j in range(5):
            if j != i and not ignore[i, j]:
                den += math.exp(torch.dot(q[i], k[j]).item() / 0.07)
        for m in range(3):
            den += math.exp(torch.dot(q[i], mem[m]).item() / 0.07)
        total += -math.log(pos / den)
    assert got.item() == pytest.approx(total / 5, rel=1e-5)


def _models():
    torch.manual_seed(0)
    s = MODELS.build(tiny_model_cfg('faster', 8))
    t = MODELS.build(tiny_model_cfg('faster', 16))
    return s, t


def _gts():
    return [
        InstanceData(bboxes=torch.tensor([[4., 4., 40., 36.], [8., 6., 44., 38.]]),
                     labels=torch.tensor([0, 1])),
        InstanceData(bboxes=torch.tensor([[2., 10., 60., 62.]]), labels=torch.tensor([2]))
    ]


def test_against_per_roi_loops():
    """SGFI: each RoI pooled from each level by mmcv's RoIAlign (stride 4 ... 64), adapted,
    embedded, weighted; CKD: the R-CNN shared fcs run per RoI; boxes 0 and 1 (IoU > 0.5,
    same image) are not each other's negatives."""
    student, teacher = _models()
    loss = GDetKDLoss(ckd_channels=(32, 32), loss_weight=2.0, memory_size=4)
    loss.setup(dict(s_feats=[torch.Size([2, 16, 16 // 2**i, 16 // 2**i]) for i in range(5)],
                    t_feats=[torch.Size([2, 32, 16 // 2**i, 16 // 2**i]) for i in range(5)]))
    assert len(loss.adapters['s_feats'].convs) == 5 and loss.embed is not None
    s_feats = [torch.randn(2, 16, 16 // 2**i, 16 // 2**i, requires_grad=True) for i in range(5)]
    t_feats = [torch.randn(2, 32, 16 // 2**i, 16 // 2**i) for i in range(5)]
    gts = _gts()
    out = loss(s_feats, t_feats, gt_instances=gts, student=student, teacher=teacher)
    assert set(out) == {'loss_sgfi', 'loss_ckd'}

    rois = torch.tensor([[0., 4., 4., 40., 36.], [0., 8., 6., 44., 38.], [1., 2., 10., 60., 62.]])
    adapted = loss.adapters['s_feats'](s_feats)
    t_ext = teacher.roi_head.bbox_roi_extractor
    t_rois = t_ext(t_feats[:4], rois)
    sq = 0.0
    for i in range(3):
        levels = [RoIAlign(7, 1 / s, 0, aligned=True)(adapted[lvl], rois[i:i + 1])
                  for lvl, s in enumerate([4, 8, 16, 32, 64])]
        logits = torch.stack([(loss.embed(x) * loss.embed(t_rois[i:i + 1])).sum() for x in levels])
        w = torch.softmax(logits / loss.tau, 0)
        fused = sum(w[lvl] * levels[lvl] for lvl in range(5))
        sq += ((fused - t_rois[i:i + 1])**2).sum()
    expected_sgfi = 2.0 * 1.0 * sq / t_rois.numel()
    assert out['loss_sgfi'].item() == pytest.approx(expected_sgfi.item(), rel=1e-5)

    s_rois = student.roi_head.bbox_roi_extractor(s_feats[:4], rois)
    head_s, head_t = student.roi_head.bbox_head, teacher.roi_head.bbox_head
    q = [F.normalize(loss.ckd_proj(head_s.relu(head_s.shared_fcs[1](head_s.relu(
        head_s.shared_fcs[0](s_rois[i].flatten()))))), dim=0) for i in range(3)]
    k = [F.normalize(head_t.relu(head_t.shared_fcs[1](head_t.relu(
        head_t.shared_fcs[0](t_rois[i].flatten())))), dim=0) for i in range(3)]
    negatives = {0: [2], 1: [2], 2: [0, 1]}  # IoU(box 0, box 1) = 1120 / 1424 > 0.5
    total = 0.0
    for i in range(3):
        pos = torch.exp(torch.dot(q[i], k[i]) / 0.07)
        den = pos + sum(torch.exp(torch.dot(q[i], k[j]) / 0.07) for j in negatives[i])
        total += -torch.log(pos / den)
    assert out['loss_ckd'].item() == pytest.approx((2.0 * 0.5 * total / 3).item(), rel=1e-5)
    # the teacher keys entered the memory (training mode); a second call uses them
    assert loss.memory().shape == (3, 32)
    (out['loss_sgfi'] + out['loss_ckd']).backward()
    assert s_feats[4].grad.abs().sum() > 0  # P6 reaches the student through SGFI
    assert loss.tau.grad is not None and loss.ckd_proj.weight.grad is not None


def test_memory_ring_and_ablations():
    loss = GDetKDLoss(memory_size=4, sgfi_weight=0.0, ckd_feature='roi')
    assert loss.feature_pairs == ()
    loss._push_memory(torch.tensor([[1.], [2.], [3.]]))
    loss._push_memory(torch.tensor([[4.], [5.]]))
    assert loss._memory[:, 0].tolist() == [5., 2., 3., 4.] and loss.memory().shape[0] == 4
    loss._push_memory(torch.arange(6.).view(6, 1))  # more than Q: the last 4
    assert sorted(loss._memory[:, 0].tolist()) == [2., 3., 4., 5.]
    loss.build_modules(16, 32)
    assert loss.embed is None and loss.ckd_proj.weight.shape == (32, 16)
    only_sgfi = GDetKDLoss(ckd_weight=0.0)
    only_sgfi.build_modules(16, 32)
    assert only_sgfi.ckd_proj is None and only_sgfi.embed is not None


def test_options_and_errors():
    for kwargs, match in ((dict(rois='proposals'), 'rois must be one of'),
                          (dict(ckd_feature='logits'), 'ckd_feature'),
                          (dict(ckd_denominator='x'), 'ckd_denominator'),
                          (dict(sgfi_weight=0.0, ckd_weight=0.0), 'not both'),
                          (dict(memory_size=-1), 'memory_size')):
        with pytest.raises(ValueError, match=match):
            GDetKDLoss(**kwargs)
    student, teacher = _models()
    feats = [torch.zeros(1, 16, 8, 8)] * 5
    with pytest.raises(RuntimeError, match='build_modules'):
        GDetKDLoss()(feats, feats, gt_instances=_gts()[:1], student=student, teacher=teacher)
    loss = GDetKDLoss(sgfi_weight=0.0)  # ckd_channels 1024 vs the tiny heads' 32
    loss.build_modules(16, 16)
    with pytest.raises(ValueError, match='ckd_channels'):
        loss(feats, [torch.zeros(1, 32, 8, 8)] * 5, gt_instances=_gts()[:1], student=student,
             teacher=teacher)
    with pytest.raises(TypeError, match='two-stage'):
        loss(feats, feats, gt_instances=_gts()[:1], student=MODELS.build(tiny_model_cfg('retina')),
             teacher=teacher)
    with pytest.raises(RuntimeError, match='none were captured'):
        sampled = GDetKDLoss(rois='sampled', sgfi_weight=0.0, ckd_channels=(32, 32))
        sampled.build_modules(16, 32)
        sampled(feats, feats, gt_instances=_gts()[:1], student=student, teacher=teacher)


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'faster', 'loss_gdetkd',
                               dict(type='GDetKDLoss', **loss_cfg))


@pytest.mark.parametrize('rois', ['gt', 'sampled'])
def test_distiller_steps_backpropagate(tmp_path, rois):
    distiller = _pair(tmp_path, rois=rois, ckd_channels=(32, 32))
    loss = distiller.distill_losses['loss_gdetkd']
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 2],
                          num_classes=3)
    data = distiller.student.data_preprocessor(data, True)
    distiller.loss(data['inputs'], data['data_samples'])
    assert loss.memory() is not None  # keys of step 0 are negatives at step 1
    losses = distiller.loss(data['inputs'], data['data_samples'])
    sgfi, ckd = losses['distill.loss_gdetkd.loss_sgfi'], losses['distill.loss_gdetkd.loss_ckd']
    assert torch.isfinite(sgfi) and sgfi > 0 and torch.isfinite(ckd) and ckd > 0
    (sgfi + ckd).backward()
    assert distiller.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert distiller.student.roi_head.bbox_head.shared_fcs[0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in distiller.distill_losses.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())
