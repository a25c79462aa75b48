"""DKD against the paper's equations written out per RoI (softmax by hand), the
KD = TCKD + (1 - p_t^T) NCKD identity (Eq. 6), the authors' formulation, mmrazor
1.0.0's DKDLoss, and one Distiller step on a tiny Faster R-CNN pair."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd_det.models.losses import DKDLoss
from mmkd_det.models.losses.dkd_loss import dkd_terms
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, save_weights, tiny_model_cfg


def _loop_dkd(s_logits, t_logits, target, T):
    """TCKD, NCKD per row from Eqs. 1, 2, 5 with exp/sum written out."""
    tckd, nckd = [], []
    for zs, zt, t in zip(s_logits.tolist(), t_logits.tolist(), target.tolist()):
        es = [math.exp(v / T) for v in zs]
        et = [math.exp(v / T) for v in zt]
        ps_t, pt_t = es[t] / sum(es), et[t] / sum(et)                    # Eq. 1
        bs, bt = [ps_t, 1 - ps_t], [pt_t, 1 - pt_t]
        tckd.append(sum(b * math.log(b / a) for a, b in zip(bs, bt)))
        others = [i for i in range(len(zs)) if i != t]
        ns = sum(es[i] for i in others)
        nt = sum(et[i] for i in others)
        nckd.append(sum((et[i] / nt) * math.log((et[i] / nt) / (es[i] / ns)) for i in others))
    return torch.tensor(tckd, dtype=torch.float64), torch.tensor(nckd, dtype=torch.float64)


def test_hand_example():
    # teacher p = (0.5, 0.25, 0.25), student uniform, target 0:
    # TCKD = 0.5 ln(0.5 / (1/3)) + 0.5 ln(0.5 / (2/3)) = 0.5 ln 1.5 + 0.5 ln 0.75;
    # among non-targets both are (0.5, 0.5): NCKD = 0
    t = torch.tensor([[math.log(2.), 0., 0.]])
    s = torch.zeros(1, 3)
    tckd, nckd, p_t = dkd_terms(s, t, torch.tensor([0]))
    assert tckd.item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75), abs=1e-7)
    assert nckd.item() == pytest.approx(0.0, abs=1e-7)
    assert p_t.item() == pytest.approx(0.5)
    # target 1 instead: b^T = (0.25, 0.75), b^S = (1/3, 2/3); non-targets (2/3, 1/3) vs (1/2, 1/2)
    tckd, nckd, _ = dkd_terms(s, t, torch.tensor([1]))
    assert tckd.item() == pytest.approx(0.25 * math.log(0.75) + 0.75 * math.log(1.125), abs=1e-7)
    assert nckd.item() == pytest.approx(
        2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3), abs=1e-7)


@pytest.mark.parametrize('T', [1.0, 2.0, 4.0])
def test_against_per_roi_loop_and_kd_identity(T):
    torch.manual_seed(0)
    s = torch.randn(7, 5, dtype=torch.float64) * 3
    t = torch.randn(7, 5, dtype=torch.float64) * 3
    target = torch.tensor([0, 4, 2, 4, 1, 3, 4])
    tckd, nckd, p_t = dkd_terms(s, t, target, T)
    ref_tckd, ref_nckd = _loop_dkd(s, t, target, T)
    torch.testing.assert_close(tckd, ref_tckd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(nckd, ref_nckd, rtol=1e-10, atol=1e-12)
    # Eq. 6: classical KD = TCKD + (1 - p_t^T) NCKD, KD as the full-softmax KL
    kd = (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1)
    torch.testing.assert_close(tckd + (1 - p_t) * nckd, kd, rtol=1e-10, atol=1e-12)


def test_equals_authors_masked_formulation():
    """The authors' dkd_loss (binary KL by masked sums; NCKD by subtracting 1000
    from the target logit), re-written here, on RoI logits with background."""
    torch.manual_seed(1)
    s, t = torch.randn(9, 4) * 2, torch.randn(9, 4) * 2
    target = torch.tensor([3, 0, 3, 1, 3, 2, 3, 3, 0])
    alpha, beta, T = 1.0, 0.25, 2.0
    gt = F.one_hot(target, 4).bool()

    def binary(p):
        return torch.stack([(p * gt).sum(1), (p * ~gt).sum(1)], 1)

    ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
    tckd = F.kl_div(torch.log(binary(ps)), binary(pt), reduction='sum') * T**2 / 9
    nckd = F.kl_div(F.log_softmax(s / T - 1000. * gt, 1), F.softmax(t / T - 1000. * gt, 1),
                    reduction='sum') * T**2 / 9
    ours_t, ours_n, _ = dkd_terms(s, t, target, T)
    assert (ours_t.sum() * T**2 / 9).item() == pytest.approx(tckd.item(), rel=1e-5)
    assert (ours_n.sum() * T**2 / 9).item() == pytest.approx(nckd.item(), rel=1e-5)
    assert (alpha * ours_t.sum() + beta * ours_n.sum()).item() * T**2 / 9 == pytest.approx(
        (alpha * tckd + beta * nckd).item(), rel=1e-5)


def test_gradient_is_finite_for_confident_logits():
    s = torch.tensor([[30., -30., 0.], [0., 0., 0.]], requires_grad=True)
    t = torch.tensor([[-20., 20., 0.], [5., 5., -5.]])
    tckd, nckd, _ = dkd_terms(s, t, torch.tensor([0, 2]))
    (tckd + nckd).sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(tckd).all()


def test_options_and_errors():
    with pytest.raises(ValueError, match='temperature'):
        DKDLoss(temperature=0)
    with pytest.raises(ValueError, match='no target class'):
        DKDLoss(rois='proposals')
    with pytest.raises(ValueError, match='same classes'):
        dkd_terms(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    loss = DKDLoss()
    assert (loss.alpha, loss.beta, loss.temperature, loss.rois) == (1.0, 0.25, 1.0, 'sampled')
    s = MODELS.build(tiny_model_cfg('faster', 8, num_classes=3))
    t = MODELS.build(tiny_model_cfg('faster', 16, num_classes=4))
    with pytest.raises(ValueError, match='same\nnum_classes|same num_classes'):
        loss([torch.zeros(1, 32, 8, 8)] * 4, gt_instances=[], student=s, teacher=t)
    t = MODELS.build(tiny_model_cfg('faster', 16, num_classes=3))
    with pytest.raises(RuntimeError, match='none were captured'):
        loss([torch.zeros(1, 32, 8, 8)] * 4, gt_instances=[], student=s, teacher=t)
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    with pytest.raises(TypeError, match='roi_head.bbox_head'):
        loss([torch.zeros(1, 32, 8, 8)] * 4, gt_instances=[], student=retina, teacher=t)


def _distiller(tmp_path, **loss_cfg):
    ckpt = save_weights(tiny_model_cfg('faster', 16), str(tmp_path / 't.pth'), seed=1)
    return MODELS.build(
        dict(type='Distiller', student=tiny_model_cfg('faster', 8),
             teacher=tiny_model_cfg('faster', 16), teacher_ckpt=ckpt,
             recorders=dict(fpn=dict(source='neck')),
             distill_losses=dict(loss_dkd=dict(type='DKDLoss', **loss_cfg)), probe_size=64))


def _data(model):
    return demo_batch(model, (3, 1))


@pytest.mark.parametrize('rois', ['sampled', 'gt'])
def test_distiller_step(tmp_path, rois, monkeypatch):
    """One Distiller step: finite terms equal to DKD recomputed by the per-RoI loop
    on the RoIs, logits and labels mmdet's student RoI head used in that step
    (spied) and the teacher's head called directly; the gradient reaches the
    student, never the teacher."""
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    distiller = _distiller(tmp_path, rois=rois, alpha=1.0, beta=2.0, temperature=2.0)
    data = _data(distiller)
    seen = {}
    forward, loss_and_target = StandardRoIHead._bbox_forward, BBoxHead.loss_and_target

    def spy_forward(self, x, rois_):
        out = forward(self, x, rois_)
        if self is distiller.student.roi_head and 'rois' not in seen:
            seen.update(rois=rois_.clone(), cls=out['cls_score'].detach().clone())
        return out

    def spy_target(self, sampling_results, rcnn_train_cfg, **kw):
        seen['labels'] = self.get_targets(sampling_results, rcnn_train_cfg)[0]
        return loss_and_target(self, sampling_results=sampling_results,
                               rcnn_train_cfg=rcnn_train_cfg, **kw)

    monkeypatch.setattr(StandardRoIHead, '_bbox_forward', spy_forward)
    monkeypatch.setattr(BBoxHead, 'loss_and_target', spy_target)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    monkeypatch.undo()
    tckd, nckd = losses['distill.loss_dkd.loss_tckd'], losses['distill.loss_dkd.loss_nckd']
    assert torch.isfinite(tckd) and torch.isfinite(nckd) and tckd > 0 and nckd > 0
    assert 'loss' not in vars(distiller.student.roi_head)

    teacher = distiller.teacher
    gts = [s.gt_instances for s in data['data_samples']]
    with torch.no_grad():
        t_feats = teacher.extract_feat(data['inputs'])
        if rois == 'sampled':
            r, s_logits, labels = seen['rois'], seen['cls'], seen['labels']
        else:
            from mmdet.structures.bbox import bbox2roi
            r = bbox2roi([g.bboxes for g in gts])
            s_feats = distiller.student.extract_feat(data['inputs'])
            s_logits = distiller.student.roi_head._bbox_forward(s_feats, r)['cls_score']
            labels = torch.cat([g.labels for g in gts])
        head = teacher.roi_head
        t_logits = head.bbox_head(head.bbox_roi_extractor(t_feats[:4], r))[0]
    assert (labels == 3).any() == (rois == 'sampled')  # background RoIs only when sampled
    ref_t, ref_n = _loop_dkd(s_logits.double(), t_logits.double(), labels, 2.0)
    n = r.shape[0]
    assert tckd.item() == pytest.approx(1.0 * 4.0 * ref_t.sum().item() / n, rel=1e-4)
    assert nckd.item() == pytest.approx(2.0 * 4.0 * ref_n.sum().item() / n, rel=1e-4)

    (tckd + nckd).backward()
    assert distiller.student.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0
    assert distiller.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


# --------------------------------------------------- parity with mmrazor
@pytest.mark.parametrize('alpha,beta,T', [(1.0, 0.25, 1.0), (2.0, 8.0, 4.0)])
def test_parity_with_mmrazor(alpha, beta, T):
    """mmrazor 1.0.0's DKDLoss (batchmean KL times tau^2) on the same logits equals
    alpha T^2 mean(TCKD) + beta T^2 mean(NCKD), which is what DKDLoss sums."""
    try:
        from mmkd_det.compat import import_mmrazor_models
        import_mmrazor_models()
        from mmrazor.models.losses import DKDLoss as RazorDKD
    except ImportError as err:
        pytest.skip(f'mmrazor not importable: {err}')
    torch.manual_seed(2)
    s, t = torch.randn(11, 6) * 2, torch.randn(11, 6) * 2
    target = torch.tensor([5, 0, 5, 1, 5, 2, 3, 5, 4, 0, 5])
    razor = RazorDKD(tau=T, alpha=alpha, beta=beta, reduction='batchmean')(s, t, target)
    tckd, nckd, _ = dkd_terms(s, t, target, T)
    ours = T**2 * (alpha * tckd.mean() + beta * nckd.mean())
    assert ours.item() == pytest.approx(razor.item(), rel=1e-4)
