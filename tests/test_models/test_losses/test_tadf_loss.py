"""TADF: the feature, classification and regression terms on hand-made tensors (values by
hand), the head terms against a per-RoI loop on mmdet's own R-CNN path, the decay, and one
Distiller step on a tiny Faster R-CNN pair."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmdet.structures.bbox import bbox_overlaps
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses import TADFLoss
from mmkd_det.models.losses import tadf_loss as tadf
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, tiny_loss_distiller, tiny_model_cfg


@pytest.fixture(autouse=True)
def no_decay_progress():
    """Other tests' runners leave their progress in the message hub: clear it."""
    hub = MessageHub.get_current_instance()
    saved = {k: hub.get_info(k) for k in ('epoch', 'max_epochs', 'iter', 'max_iters')}
    for k in saved:
        hub.update_info(k, None)
    yield
    for k, v in saved.items():
        hub.update_info(k, v)


def test_gaussian_feature_loss_hand_value():
    # one level, mask [[1, 0.5], [0, 0]]; student - teacher (1, 2) at (0, 0): 5, (2, 0)
    # at (0, 1): 4, (9, 9) elsewhere (masked out). (5 + 0.5 x 4) / (2 x 1.5) = 7 / 3
    s = torch.tensor([[[[1., 2.], [9., 9.]], [[2., 0.], [9., 9.]]]])
    m = torch.tensor([[[1., 0.5], [0., 0.]]])
    assert tadf.gaussian_feature_loss([s], [torch.zeros_like(s)], [m]).item() == \
        pytest.approx(7 / 3)
    assert tadf.gaussian_feature_loss([s], [s], [torch.zeros_like(m)]).item() == 0.0


def test_soft_label_kl_hand_value():
    # teacher logits (log 3, 0): p = (3/4, 1/4); student (0, 0): q = (1/2, 1/2)
    s, t = torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert tadf.soft_label_kl(s, t).item() == pytest.approx(kl)
    # T = 2: p = (sqrt 3, 1) / (sqrt 3 + 1), times T^2
    p0 = math.sqrt(3) / (math.sqrt(3) + 1)
    kl2 = p0 * math.log(2 * p0) + (1 - p0) * math.log(2 * (1 - p0))
    assert tadf.soft_label_kl(s, t, 2.0).item() == pytest.approx(4 * kl2)


def test_class_deltas_and_matched_gt():
    pred = torch.arange(24.).view(2, 12)  # 3 classes x 4
    out = tadf.class_deltas(pred, torch.tensor([2, 3]))  # 3 = background reads class 2
    assert out.tolist() == [[8., 9., 10., 11.], [20., 21., 22., 23.]]
    assert tadf.class_deltas(pred[:, :4], torch.tensor([1, 0])) is not None
    gt = torch.tensor([[[0., 0., 20., 20.], [0., 0., 10., 10.], [30., 30., 50., 50.]]])
    gt_labels = torch.tensor([[0, 0, 1]])
    valid = torch.tensor([[True, True, True]])
    rois = torch.tensor([[0., 0., 0., 20., 10.], [0., 0., 0., 20., 10.], [0., 0., 0., 5., 5.]])
    boxes, iou = tadf.matched_gt(rois, torch.tensor([0, 1, 0]), gt, gt_labels, valid)
    # RoI 0 (class 0): IoU 0.5 with [0, 0, 20, 20], 0.5 with [0, 0, 10, 10]: the first
    # RoI 1 (class 1): only [30, 30, 50, 50], IoU 0; RoI 2: [0, 0, 10, 10], 25 / 100
    assert boxes.tolist() == [[0., 0., 20., 20.], [30., 30., 50., 50.], [0., 0., 10., 10.]]
    assert iou.tolist() == pytest.approx([0.5, 0.0, 0.25])
    _, iou = tadf.matched_gt(rois, torch.tensor([2, 2, 2]), gt, gt_labels, valid)
    assert iou.tolist() == [-1.0, -1.0, -1.0]  # no GT of that class


def _hand_case(monkeypatch):
    """GTs [0, 0, 20, 20] (class 0) and [30, 30, 50, 50] (class 1). RoI 0 = [0, 0, 20,
    10], class 0, IoU 0.5; the teacher's deltas (0, 0.5, 0, log 2) decode (means 0, stds
    1) to the GT exactly: IoU 1 > 0.5, distilled. RoI 1 = GT 1, class 1, IoU 1; the
    teacher's (0.1, 0, 0, 0) shifts it by 2 px: IoU < 1, not distilled. RoI 2:
    background. Student deltas 0. Class-agnostic regression (4 columns)."""
    rois = torch.tensor([[0., 0., 0., 20., 10.], [0., 30., 30., 50., 50.], [0., 5., 40., 9., 44.]])
    t_reg = torch.tensor([[0., 0.5, 0., math.log(2.0)], [0.1, 0., 0., 0.], [1., 1., 1., 1.]])
    t_cls = torch.tensor([[2., 0., 0.], [0., 1., 0.], [0., 0., 5.]])
    s_cls = torch.tensor([[0., 0., 0.], [1., 0., 0.], [3., 0., 0.]], requires_grad=True)
    record = SimpleNamespace(rois=rois, labels=torch.tensor([0, 1, 2]),
                             pos=torch.tensor([True, True, False]), cls_score=s_cls,
                             bbox_pred=torch.zeros(3, 4, requires_grad=True))
    monkeypatch.setattr(tadf, 'teacher_roi_outputs', lambda teacher, feats, r: (t_cls, t_reg))
    teacher = SimpleNamespace(roi_head=SimpleNamespace(
        bbox_head=SimpleNamespace(bbox_coder=DeltaXYWHBBoxCoder())))
    gts = [InstanceData(bboxes=torch.tensor([[0., 0., 20., 20.], [30., 30., 50., 50.]]),
                        labels=torch.tensor([0, 1]))]
    kl = [tadf.soft_label_kl(s_cls[i:i + 1], t_cls[i:i + 1]).item() for i in range(3)]
    return record, [torch.zeros(1, 1, 4, 4)], gts, teacher, kl


def test_head_terms_hand_values(monkeypatch):
    record, t_feats, gts, teacher, kl = _hand_case(monkeypatch)
    out = TADFLoss().head_terms(record, t_feats, gts, teacher)
    assert out['loss_reg'].item() == pytest.approx(0.25 + math.log(2.0)**2)
    assert out['loss_cls'].item() == pytest.approx((kl[0] + kl[1]) / 2)
    out = TADFLoss(reg_gate='none', cls_rois='all').head_terms(record, t_feats, gts, teacher)
    assert out['loss_reg'].item() == pytest.approx((0.25 + math.log(2.0)**2 + 0.01) / 2)
    assert out['loss_cls'].item() == pytest.approx(sum(kl) / 3)
    # smooth L1 (beta 1): 0.5 x 0.5^2 + 0.5 x (log 2)^2 (both below 1)
    out = TADFLoss(reg_loss='smooth_l1').head_terms(record, t_feats, gts, teacher)
    assert out['loss_reg'].item() == pytest.approx(0.5 * (0.25 + math.log(2.0)**2))
    # 'student' gate: the student's (zero) deltas decode to the RoI itself, as 'proposal'
    out = TADFLoss(reg_gate='student').head_terms(record, t_feats, gts, teacher)
    assert out['loss_reg'].item() == pytest.approx(0.25 + math.log(2.0)**2)
    out['loss_reg'].backward()
    assert record.bbox_pred.grad[0].abs().sum() > 0 and record.bbox_pred.grad[1:].eq(0).all()


def test_decay_factor():
    hub = MessageHub.get_current_instance()
    assert TADFLoss().decay_factor() == 1.0  # no progress set
    hub.update_info('epoch', 3)
    hub.update_info('max_epochs', 12)
    hub.update_info('iter', 50)
    hub.update_info('max_iters', 200)
    # epoch t = 4 of 12 (0-based 3): 1 - (4 - 1) / 12
    assert TADFLoss().decay_factor() == pytest.approx(0.75)
    assert TADFLoss(decay='iter').decay_factor() == pytest.approx(0.75)
    assert TADFLoss(decay='none').decay_factor() == 1.0
    hub.update_info('epoch', 13)
    assert TADFLoss().decay_factor() == 0.0


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'faster', 'loss_tadf',
                               dict(type='TADFLoss', **loss_cfg))


def _data(model):
    return demo_batch(model, (3, 2))


def test_head_terms_against_per_roi_loop(tmp_path):
    """On the student's captured RoIs: the teacher's logits and deltas through mmdet's own
    extractor and bbox head, then a loop over RoIs with per-RoI GT matching."""
    d = _pair(tmp_path, reg_gate='none')
    loss = d.distill_losses['loss_tadf']
    data = _data(d)
    gts = [s.gt_instances for s in data['data_samples']]
    with loss.student_context(d.student):
        d.student.loss(data['inputs'], data['data_samples'])
    record = loss._capture.record
    with torch.no_grad():
        t_feats = list(d.teacher.extract_feat(data['inputs']))
        t_head = d.teacher.roi_head
        t_cls, t_reg = t_head.bbox_head(t_head.bbox_roi_extractor(t_feats[:4], record.rois))
    out = {}
    for gate in ('none', 'proposal'):
        loss.reg_gate = gate
        out[gate] = loss.head_terms(record, t_feats, gts, d.teacher)
    k = record.num_classes
    coder = d.teacher.roi_head.bbox_head.bbox_coder
    kls, regs, gated = [], [], []
    for r in range(record.rois.shape[0]):
        if not record.pos[r]:
            continue
        label = int(record.labels[r])
        p = torch.softmax(t_cls[r], 0)
        kls.append(float((p * (p.log() - record.cls_score[r].detach().log_softmax(0))).sum()))
        sd = record.bbox_pred[r].view(k, 4)[label]
        td = t_reg[r].view(k, 4)[label]
        regs.append(float(((sd - td)**2).sum()))
        g = gts[int(record.rois[r, 0])]
        box = record.rois[r, 1:]
        ious = [float(bbox_overlaps(box[None], b[None])) if int(lab) == label else -1.0
                for b, lab in zip(g.bboxes, g.labels)]
        best = max(range(len(ious)), key=lambda i: ious[i])
        t_box = coder.decode(box[None], td[None])
        gated.append(float(bbox_overlaps(t_box, g.bboxes[best][None])) > ious[best])
    assert len(kls) > 2
    assert out['none']['loss_cls'].item() == pytest.approx(sum(kls) / len(kls), rel=1e-5)
    assert out['none']['loss_reg'].item() == pytest.approx(sum(regs) / len(regs), rel=1e-5)
    kept = [v for v, g in zip(regs, gated) if g]
    assert 0 < len(kept) < len(regs), (len(kept), len(regs))
    assert out['proposal']['loss_reg'].item() == pytest.approx(
        sum(kept) / max(len(kept), 1), rel=1e-5, abs=1e-7)


def test_distiller_step_backpropagates(tmp_path):
    d = _pair(tmp_path, feat_weight=0.5, reg_gate='none')
    loss = d.distill_losses['loss_tadf']
    assert len(loss.adapters['s_feats'].convs) == 5  # 8 -> 16 channels, five levels
    data = _data(d)
    losses = d.loss(data['inputs'], data['data_samples'])
    terms = [losses[f'distill.loss_tadf.loss_{k}'] for k in ('feat', 'cls', 'reg')]
    assert all(torch.isfinite(v) and v > 0 for v in terms)
    sum(terms).backward()
    assert d.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert d.student.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0
    assert d.student.roi_head.bbox_head.fc_reg.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in loss.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())


def test_errors(tmp_path):
    for key, value in (('gt_levels', 'one'), ('cls_rois', 'negative'), ('reg_gate', 'gt'),
                       ('reg_loss', 'giou'), ('decay', 'cosine')):
        with pytest.raises(ValueError, match=key):
            TADFLoss(**{key: value})
    with pytest.raises(ValueError, match='sigma_ratio'):
        TADFLoss(sigma_ratio=0)
    with pytest.raises(ValueError, match='temperature'):
        TADFLoss(temperature=0)
    faster = MODELS.build(tiny_model_cfg('faster', 8))
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    feats = [torch.zeros(1, 8, 8, 8)] * 5
    with pytest.raises(TypeError, match='roi_head.bbox_head'):
        TADFLoss()(feats, feats, gt_instances=[], student=retina, teacher=faster)
    with pytest.raises(RuntimeError, match='none were captured'):
        TADFLoss()(feats, feats, gt_instances=[], student=faster, teacher=faster)
