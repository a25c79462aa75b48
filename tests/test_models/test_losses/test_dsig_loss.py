"""DSIG: node, edge and mining terms on hand-made nodes (values worked out below), the
batched terms against the authors' per-image formulation (split by image, mean-squared
errors, cosine matrices, cross-entropy mining) re-written as a loop, and Distiller steps
on a tiny Faster R-CNN pair."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd_det.models.losses import DSIGLoss
from mmkd_det.models.losses.dsig_loss import (edge_loss, logit_cls_kd, logit_reg_kd,
                                              mine_background, node_losses)
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, tiny_loss_distiller, tiny_model_cfg


def test_node_terms_by_hand():
    # image 0: r0 positive, r1 and r2 negative; image 1: r3 positive; D = 2.
    # squared differences: r0 1 + 1 = 2, r1 4, r2 0, r3 9.
    # fg_0 = 2 / (1 * 2) = 1, fg_1 = 9 / 2 = 4.5;
    # bg_0 = (4 + 0) / (2 * 2) = 1, times lambda = 7.5 * 1 / 2 = 3.75; bg_1 = 0 (no negatives)
    t = torch.zeros(4, 2)
    s = torch.tensor([[1., 1.], [2., 0.], [0., 0.], [3., 0.]], requires_grad=True)
    pos = torch.tensor([True, False, False, True])
    img = torch.tensor([0, 0, 0, 1])
    out = node_losses(s, t, pos, img, 2, bg_alpha=7.5)
    assert out['fg'].tolist() == pytest.approx([1.0, 4.5])
    assert out['bg'].tolist() == pytest.approx([3.75, 0.0])
    assert node_losses(s, t, pos, img, 2, bg_alpha=None)['bg'].tolist() == pytest.approx([1., 0.])
    # a third image without RoIs contributes zeros
    out = node_losses(s, t, pos, img, 3, bg_alpha=7.5)
    assert out['fg'].tolist() == pytest.approx([1.0, 4.5, 0.0])
    (out['fg'].sum() + out['bg'].sum()).backward()
    assert torch.isfinite(s.grad).all()
    with pytest.raises(ValueError, match='adapter'):
        node_losses(s, torch.zeros(4, 3), pos, img, 2)


def test_edge_term_by_hand():
    # image 0, nodes r0, r1: student (1, 0), (0, 1) -> cos 0; teacher (1, 0), (1, 1) -> 1/sqrt 2.
    # sum over the 2 x 2 pairs of squared differences = 2 * 0.5 = 1; / (2 * 2^2) = 0.125.
    # r2 is not in the graph (its cosines must not count); image 1 has one node: 0.
    s = torch.tensor([[1., 0.], [0., 1.], [5., -3.], [2., 2.]])
    t = torch.tensor([[1., 0.], [1., 1.], [-1., 4.], [1., 7.]])
    in_graph = torch.tensor([True, True, False, True])
    img = torch.tensor([0, 0, 0, 1])
    out = edge_loss(s, t, in_graph, img, 2)
    assert out.tolist() == pytest.approx([0.125, 0.0])
    # nobody in the graph: zeros
    assert edge_loss(s, t, torch.zeros(4, dtype=torch.bool), img, 2).tolist() == [0., 0.]


def test_mining_by_hand():
    # two classes + background (last logit). Uniform logits: -log(1/3) = 1.0986 >= 0.6 -> mined;
    # background 5 vs 0, 0: -log(e^5 / (e^5 + 2)) = 0.0134 -> not; a positive is never mined.
    logits = torch.tensor([[0., 0., 0.], [0., 0., 5.], [0., 0., 0.]])
    pos = torch.tensor([False, False, True])
    assert mine_background(logits, pos, 2, 0.6).tolist() == [True, False, False]
    assert mine_background(logits, pos, 2, 1.1).tolist() == [False, False, False]
    assert mine_background(logits, pos, 2, math.log(3) - 1e-4).tolist() == [True, False, False]


def test_logit_terms_by_hand():
    # teacher p = (1/2, 1/4, 1/4), student uniform: KL = 1/2 ln(3/2) + 2 * 1/4 ln(3/4),
    # divided by the R (K + 1) = 3 entries (F.kl_div's element mean)
    t = torch.tensor([[math.log(2.), 0., 0.]])
    s = torch.zeros(1, 3)
    kl = 0.5 * math.log(1.5) + 0.5 * math.log(0.75)
    assert logit_cls_kd(s, t).item() == pytest.approx(kl / 3)
    # two classes (8 deltas); RoI 0 positive of class 1 -> columns 4..7, differences
    # (1, -2, 0, 0.5); RoI 1 negative (ignored); L1 sum 3.5 over R = 2 RoIs = 1.75;
    # smooth L1 with beta 1: 0.5 + 1.5 + 0 + 0.125 = 2.125 -> 1.0625
    sd = torch.zeros(2, 8)
    td = torch.zeros(2, 8)
    td[0, 4:] = torch.tensor([-1., 2., 0., -0.5])
    sd[1] = 9.
    labels, pos = torch.tensor([1, 2]), torch.tensor([True, False])
    assert logit_reg_kd(sd, td, labels, pos).item() == pytest.approx(1.75)
    assert logit_reg_kd(sd, td, labels, pos, beta=1.0).item() == pytest.approx(1.0625)
    # class-agnostic deltas: all four
    assert logit_reg_kd(sd[:, 4:], td[:, 4:], labels, pos).item() == pytest.approx(1.75)
    with pytest.raises(ValueError, match='num_classes'):
        logit_cls_kd(s, torch.zeros(1, 4))


@pytest.mark.parametrize('T', [1.0, 2.0])
def test_logit_terms_equal_authors_formulation(T):
    """The authors' DistillROILoss re-written: F.kl_div (element mean) * T^2 and
    smooth-L1 on the class columns of the positives, summed, over R."""
    torch.manual_seed(0)
    s, t = torch.randn(6, 4) * 2, torch.randn(6, 4) * 2
    ref = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='mean') * T * T
    assert logit_cls_kd(s, t, T).item() == pytest.approx(ref.item(), rel=1e-5)
    sd, td = torch.randn(6, 12), torch.randn(6, 12)
    labels = torch.tensor([0, 2, 3, 1, 3, 3])
    pos = labels < 3
    fg = pos.nonzero().squeeze(1)
    cols = 4 * labels[fg][:, None] + torch.arange(4)
    for beta in (0.0, 0.5):
        a, b = sd[fg[:, None], cols], td[fg[:, None], cols]
        ref = (F.l1_loss(a, b, reduction='sum') if beta == 0 else F.smooth_l1_loss(
            a, b, beta=beta, reduction='sum')) / 6
        value = logit_reg_kd(sd, td, labels, pos, beta)
        assert value.item() == pytest.approx(ref.item(), rel=1e-5)


def _authors_loop(s, t, t_logits, pos, img, num_images, alpha, thr, bg_class):
    """The authors' terms per image: split by image, F.mse_loss means, the bg mean times
    alpha * n_fg / n_bg, cosine matrices of [fg; mined bg] by F.normalize, 0.5 * mse."""
    fg_total, bg_total, edge_total = 0.0, 0.0, 0.0
    for i in range(num_images):
        sel = (img == i).nonzero().flatten().tolist()
        fg = [r for r in sel if pos[r]]
        bg = [r for r in sel if not pos[r]]
        if fg:
            fg_total += F.mse_loss(s[fg], t[fg])
        if bg:
            scale = len(fg) / len(bg) * alpha
            bg_total += F.mse_loss(s[bg], t[bg]) * scale
            ce = F.cross_entropy(t_logits[bg], torch.full((len(bg), ), bg_class), reduction='none')
            mined = [r for r, c in zip(bg, ce.tolist()) if c >= thr]
        else:
            mined = []
        nodes = fg + mined
        if nodes:
            ns, nt = F.normalize(s[nodes]), F.normalize(t[nodes])
            edge_total += 0.5 * F.mse_loss(nt @ nt.t(), ns @ ns.t())
    return fg_total, bg_total, edge_total


def test_batched_terms_equal_authors_loop():
    torch.manual_seed(0)
    n, num_images = 23, 3
    s, t = torch.randn(n, 12, dtype=torch.float64), torch.randn(n, 12, dtype=torch.float64)
    t_logits = torch.randn(n, 4, dtype=torch.float64) * 2
    img = torch.tensor([0] * 9 + [1] * 10 + [2] * 4)
    pos = torch.rand(n) < 0.4
    pos[0] = pos[9] = True
    nodes = node_losses(s, t, pos, img, num_images, bg_alpha=7.5)
    mined = mine_background(t_logits, pos, 3, 0.6)
    assert 0 < mined.sum() < (~pos).sum()  # some, not all negatives are mined
    edges = edge_loss(s, t, pos | mined, img, num_images)
    fg, bg, edge = _authors_loop(s, t, t_logits, pos, img, num_images, 7.5, 0.6, 3)
    assert nodes['fg'].sum().item() == pytest.approx(float(fg), rel=1e-10)
    assert nodes['bg'].sum().item() == pytest.approx(float(bg), rel=1e-10)
    assert edges.sum().item() == pytest.approx(float(edge), rel=1e-10)


def test_options_and_errors():
    for kw, msg in ((dict(temperature=0), 'temperature'), (dict(logit_reg_weight=-1), '>= 0'),
                    (dict(edge_bg='top'), 'edge_bg'), (dict(image_reduction='max'),
                                                       'image_reduction'),
                    (dict(bg_alpha=-1), '>= 0')):
        with pytest.raises(ValueError, match=msg):
            DSIGLoss(**kw)
    loss = DSIGLoss()
    got = (loss.fg_weight, loss.bg_weight, loss.edge_weight, loss.bg_alpha, loss.mining_thr,
           loss.edge_bg, loss.image_reduction, loss.adapter_cfg)
    assert got == (0.5, 0.5, 1.0, 7.5, 0.6, 'mined', 'sum', 'auto')
    s = MODELS.build(tiny_model_cfg('faster', 8))
    with pytest.raises(RuntimeError, match='none were captured'):
        loss([torch.zeros(1, 16, 8, 8)] * 4, [torch.zeros(1, 16, 8, 8)] * 4, gt_instances=[],
             student=s, teacher=s)
    with pytest.raises(TypeError, match='roi_head'):
        with loss.student_context(MODELS.build(tiny_model_cfg('retina', 8))):
            pass


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'faster', 'loss_dsig',
                               dict(type='DSIGLoss', **loss_cfg), levels=[0, 1, 2, 3])


def _data(model):
    return demo_batch(model, (3, 1))


@pytest.mark.parametrize('reduction', ['sum', 'mean'])
def test_against_authors_loop_on_captured_rois(tmp_path, reduction):
    """On the student's captured sampled RoIs: the loss equals the authors' per-image loop on
    RoI features pooled by mmdet's own (teacher-width) extractor from the adapted student and
    the teacher, with the teacher's R-CNN logits from its own head for the mining."""
    distiller = _pair(tmp_path, image_reduction=reduction, logit_cls_weight=3.0,
                      logit_reg_weight=1.0, temperature=2.0)
    loss = distiller.distill_losses['loss_dsig']
    student, teacher = distiller.student, distiller.teacher
    data = _data(distiller)
    gts = [s.gt_instances for s in data['data_samples']]
    with loss.student_context(student):
        student.loss(data['inputs'], data['data_samples'])
    record = loss._capture.record
    r, pos = record.rois, record.pos
    s_feats = list(record.feats[:4])
    with torch.no_grad():
        t_feats = list(teacher.extract_feat(data['inputs'])[:4])
    ext = teacher.roi_head.bbox_roi_extractor
    with torch.no_grad():
        s_rois = ext(loss.adapters['s_feats'](s_feats), r).flatten(1).double()
        t_pooled = ext(t_feats, r)
        t_logits, t_deltas = [x.double() for x in teacher.roi_head.bbox_head(t_pooled)]
    # mine about half of the negatives: threshold at the median teacher CE of the negatives
    ce = -torch.log_softmax(t_logits, 1)[:, 3]
    # (midway between two sorted values: no RoI sits on the threshold in fp32 vs fp64)
    neg_ce = ce[~pos].sort().values
    half = len(neg_ce) // 2
    thr = 0.5 * (neg_ce[half - 1] + neg_ce[half]).item()
    loss.mining_thr = thr
    n_mined = int(((ce >= thr) & ~pos).sum())
    assert 0 < n_mined < int((~pos).sum())
    out = loss(s_feats, t_feats, gt_instances=gts, student=student, teacher=teacher)
    fg, bg, edge = _authors_loop(s_rois, t_pooled.flatten(1).double(), t_logits, pos,
                                 r[:, 0].long(), 2, 7.5, thr, 3)
    assert pos.any() and (~pos).any()
    div = 2 if reduction == 'mean' else 1
    assert out['loss_node_fg'].item() == pytest.approx(0.5 * float(fg) / div, rel=1e-4)
    assert out['loss_node_bg'].item() == pytest.approx(0.5 * float(bg) / div, rel=1e-4)
    assert out['loss_edge'].item() == pytest.approx(float(edge) / div, rel=1e-4)
    # the logit term on the student's own R-CNN outputs of the step (authors' formulation)
    s_cls = record.cls_score.detach().double()
    kl = F.kl_div(F.log_softmax(s_cls / 2, 1), F.softmax(t_logits / 2, 1), reduction='mean')
    assert out['loss_logit_cls'].item() == pytest.approx(3.0 * 4 * kl.item(), rel=1e-4)
    fg = pos.nonzero().squeeze(1)
    cols = 4 * record.labels[fg][:, None] + torch.arange(4)
    l1 = (record.bbox_pred.detach().double()[fg[:, None], cols] - t_deltas[fg[:, None], cols])
    assert out['loss_logit_reg'].item() == pytest.approx(
        l1.abs().sum().item() / r.shape[0], rel=1e-4)


@pytest.mark.parametrize('edge_bg', ['mined', 'all'])
def test_distiller_step_backpropagates_into_student_and_adapters(tmp_path, edge_bg):
    logits = edge_bg == 'all'  # and the logit term on
    distiller = _pair(tmp_path, edge_bg=edge_bg, mining_thr=0.0,
                      logit_cls_weight=3.0 * logits, logit_reg_weight=1.0 * logits)
    assert len(distiller.distill_losses['loss_dsig'].adapters['s_feats'].convs) == 4
    data = _data(distiller)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    keys = ('loss_node_fg', 'loss_node_bg', 'loss_edge') + logits * ('loss_logit_cls',
                                                                     'loss_logit_reg')
    assert {k for k in losses if k.startswith('distill.')} == {f'distill.loss_dsig.{k}'
                                                               for k in keys}
    terms = [losses[f'distill.loss_dsig.{k}'] for k in keys]
    assert all(torch.isfinite(v) and v > 0 for v in terms)
    assert 'loss' not in vars(distiller.student.roi_head)
    sum(terms).backward()
    assert distiller.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in distiller.distill_losses.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())
    # the R-CNN head is reached by the logit term only
    fc_cls = distiller.student.roi_head.bbox_head.fc_cls.weight
    assert (fc_cls.grad is not None and fc_cls.grad.abs().sum() > 0) == logits


def test_bf16_records_give_float32_terms(tmp_path):
    """bf16 records (as under --amp) give float32, finite terms close to the fp32 ones (a
    whole bf16 student step is not possible on CPU: mmcv's nms refuses bf16 boxes)."""
    distiller = _pair(tmp_path)
    loss = distiller.distill_losses['loss_dsig']
    student, teacher = distiller.student, distiller.teacher
    data = _data(distiller)
    gts = [s.gt_instances for s in data['data_samples']]
    with torch.no_grad():
        t_feats = list(teacher.extract_feat(data['inputs'])[:4])
    values = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)  # the same sampled RoIs both times
        with loss.student_context(student):
            student.loss(data['inputs'], data['data_samples'])
        s_feats = [f.to(dtype) for f in loss._capture.record.feats[:4]]
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            values[dtype] = loss(s_feats, [t.to(dtype) for t in t_feats], gt_instances=gts,
                                 student=student, teacher=teacher)
    for k, v in values[torch.bfloat16].items():
        assert v.dtype == torch.float32 and torch.isfinite(v)
        assert v.item() == pytest.approx(values[torch.float32][k].item(), rel=5e-2)
