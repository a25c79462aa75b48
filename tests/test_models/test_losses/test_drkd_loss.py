"""DRKD: each term on hand-made tensors (values worked out below), the instance relations
against a per-image loop over the embedded-Gaussian definition, the loss against an
independent recomputation on pooled ground-truth instances, and a Distiller step on a tiny
RetinaNet pair."""
import math

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.structures import InstanceData

from mmkd_det.models.losses import DRKDLoss
from mmkd_det.models.losses.drkd_loss import (instance_loss, instance_relations,
                                              pixel_relation_loss, relation_distance,
                                              topk_relation_filter)
from tests.conftest import tiny_loss_distiller


def test_pixel_and_instance_terms_by_hand():
    # one image, 2 channels, 1 x 2 pixels; differences (1, 2) at pixel 0 and (0, 3) at pixel 1:
    # squared 1 + 4 and 0 + 9 -> 'paper' (sum over channels, mean over k = 2 pixels) = 7,
    # 'elements' (mean over 4 entries) = 3.5
    t = torch.zeros(1, 2, 1, 2)
    s = torch.tensor([[[[1., 0.]], [[2., 3.]]]])
    assert pixel_relation_loss(s, t, 'paper').item() == pytest.approx(7.0)
    assert pixel_relation_loss(s, t, 'elements').item() == pytest.approx(3.5)
    # two instances of 1 x 2 x 1: ||.||^2 = 5 and 9 -> paper mean 7, elements 14 / 4 = 3.5
    si = torch.tensor([[[[1.], [2.]]], [[[0.], [3.]]]])
    assert instance_loss(si, torch.zeros_like(si), 'paper').item() == pytest.approx(7.0)
    assert instance_loss(si, torch.zeros_like(si), 'elements').item() == pytest.approx(3.5)
    assert instance_loss(si[:0], si[:0]).item() == 0.0
    with pytest.raises(ValueError, match='width'):
        pixel_relation_loss(s, torch.zeros(1, 3, 1, 2))


def test_instance_relations_by_hand():
    # image 0: e1 = e2 = (1, 0), (0, 1): dot products [[1, 0], [0, 1]], d = 2, scaled by
    # 1/sqrt 2: row 0 = softmax(1/sqrt2, 0); image 1: one instance -> 1; across images 0.
    e = torch.tensor([[1., 0.], [0., 1.], [3., 3.]])
    img = torch.tensor([0, 0, 1])
    psi = instance_relations(e, e, img)
    a = math.exp(1 / math.sqrt(2))
    expected = torch.tensor([[a / (a + 1), 1 / (a + 1), 0.], [1 / (a + 1), a / (a + 1), 0.],
                             [0., 0., 1.]])
    torch.testing.assert_close(psi, expected)
    # unscaled, with a weight w_01 = 2: row 0 = softmax(1 * 1, 0 * 2) = (e/(e+1), 1/(e+1))
    w = torch.ones(3, 3)
    w[0, 1] = 2.
    psi = instance_relations(e, e, img, weight=w, scale=False)
    assert psi[0, 0].item() == pytest.approx(math.e / (math.e + 1))
    # distance: image 0 only differs; uniform student (0.5 everywhere in image 0)
    psi_s = torch.tensor([[.5, .5, 0.], [.5, .5, 0.], [0., 0., 1.]])
    d = relation_distance(psi_s, psi, img, 2)
    ref0 = sum((psi[i, j].item() - 0.5)**2 for i in range(2) for j in range(2))
    assert d.tolist() == pytest.approx([ref0, 0.0])
    # filter k = 1: each row keeps its strongest teacher relation
    keep = topk_relation_filter(psi, img, 1)
    assert keep.tolist() == [[True, False, False], [False, True, False], [False, False, True]]


def test_relations_against_per_image_loop():
    torch.manual_seed(0)
    e1, e2 = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    img = torch.tensor([0, 0, 0, 2, 2, 2, 2])
    psi = instance_relations(e1, e2, img)
    for i in range(7):
        same = [j for j in range(7) if img[j] == img[i]]
        den = sum(math.exp(float(e1[i] @ e2[j]) / math.sqrt(5)) for j in same)
        for j in range(7):
            ref = math.exp(float(e1[i] @ e2[j]) / math.sqrt(5)) / den if j in same else 0.0
            assert psi[i, j].item() == pytest.approx(ref, abs=1e-12)


def test_options_and_errors():
    for kw, msg in ((dict(normalize='sum'), 'normalize'), (dict(pr_weight=-1), '>= 0'),
                    (dict(relation_topk=0), 'relation_topk')):
        with pytest.raises(ValueError, match=msg):
            DRKDLoss(**kw)
    loss = DRKDLoss()
    assert (loss.pr_weight, loss.ir_weight, loss.ins_weight, loss.normalize,
            loss.adapter_cfg) == (1.0, 1.0, 1.0, 'elements', 'auto')
    with pytest.raises(RuntimeError, match='setup'):
        loss([torch.zeros(1, 8, 8, 8)] * 4, [torch.zeros(1, 8, 8, 8)] * 4, gt_instances=[])
    pr_only = DRKDLoss(ir_weight=0, ins_weight=0, roi_extractor=dict(
        type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=2),
        out_channels=16, featmap_strides=[8, 16]))
    pr_only.setup(dict(s_feats=[(1, 8, 8, 8)] * 2, t_feats=[(1, 16, 8, 8)] * 2), 'pr')
    assert not len(pr_only.adapters) and not len(pr_only.student_embed)
    assert len(pr_only.student_glore) == len(pr_only.pr_adapters) == 2
    out = pr_only([torch.randn(1, 8, 8, 8)] * 2, [torch.randn(1, 16, 8, 8)] * 2,
                  gt_instances=[])
    assert out['loss_pr'] > 0 and out['loss_ir'] == 0 and out['loss_ins'] == 0
    shapes = dict(s_feats=[(1, 8, 8, 8)] * 2, t_feats=[(1, 16, 8, 8)] * 2)
    with pytest.raises(ValueError, match='featmap_strides'):
        loss.setup(shapes, 'loss_drkd')


def test_loss_against_independent_recomputation():
    """Direct use after setup: loss_ins and loss_ir equal the terms recomputed with mmdet's
    own extractor on the boxes, explicit embeddings and a per-image softmax loop; loss_pr
    equals the GloRe modules applied by hand."""
    torch.manual_seed(0)
    ext = dict(type='SingleRoIExtractor',
               roi_layer=dict(type='RoIAlign', output_size=2, sampling_ratio=1),
               out_channels=4, featmap_strides=[4, 8])
    loss = DRKDLoss(roi_extractor=ext, embed_channels=3, glore=dict(zero_init_bn=False),
                    pr_weight=0.5, ir_weight=2.0, ins_weight=3.0)
    loss.setup(dict(s_feats=[(1, 2, 16, 16), (1, 2, 8, 8)],
                    t_feats=[(1, 4, 16, 16), (1, 4, 8, 8)]), 'loss_drkd')
    s = [torch.randn(2, 2, 16, 16), torch.randn(2, 2, 8, 8)]
    t = [torch.randn(2, 4, 16, 16), torch.randn(2, 4, 8, 8)]
    gts = [InstanceData(bboxes=torch.tensor([[0., 0., 20., 24.], [30., 8., 60., 60.]]),
                        labels=torch.tensor([0, 1])),
           InstanceData(bboxes=torch.tensor([[4., 4., 12., 40.]]), labels=torch.tensor([2]))]
    out = loss(s, t, gt_instances=gts)
    from mmdet.structures.bbox import bbox2roi
    rois = bbox2roi([g.bboxes for g in gts])
    mm_ext = loss._extractor
    s_ins = mm_ext(loss.adapters['s_feats'](s), rois)
    t_ins = mm_ext(t, rois)
    assert out['loss_ins'].item() == pytest.approx(3.0 * ((s_ins - t_ins)**2).mean().item(),
                                                   rel=1e-5)
    pr = 0.0
    for lvl in range(2):
        r_s = loss.pr_adapters[lvl](loss.student_glore[lvl](s[lvl]))
        pr += ((r_s - loss.teacher_glore[lvl](t[lvl]))**2).mean()
    assert out['loss_pr'].item() == pytest.approx(0.5 * pr.item(), rel=1e-5)

    def psi(embed, x, img):
        e1, e2 = embed[0](x).flatten(1), embed[1](x).flatten(1)
        d = e1.shape[1]
        out = torch.zeros(len(img), len(img))
        for i in range(len(img)):
            same = [j for j in range(len(img)) if img[j] == img[i]]
            den = sum(torch.exp(e1[i] @ e2[j] / math.sqrt(d)) for j in same)
            for j in same:
                out[i, j] = torch.exp(e1[i] @ e2[j] / math.sqrt(d)) / den
        return out

    img = [0, 0, 1]
    diff = (psi(loss.teacher_embed, t_ins, img) - psi(loss.student_embed, s_ins, img))**2
    assert out['loss_ir'].item() == pytest.approx(2.0 * diff.sum().item() / 2, rel=1e-4)


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'retina', 'loss_drkd',
                               dict(type='DRKDLoss', **loss_cfg))


@pytest.mark.parametrize('train_teacher_modules', [True, False])
def test_distiller_step(tmp_path, train_teacher_modules):
    distiller = _pair(tmp_path, relation_topk=2, train_teacher_modules=train_teacher_modules,
                      glore=dict(zero_init_bn=False))
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 2],
                          num_classes=3)
    data = distiller.student.data_preprocessor(data, True)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    terms = [losses[f'distill.loss_drkd.{k}'] for k in ('loss_pr', 'loss_ir', 'loss_ins')]
    assert all(torch.isfinite(v) and v > 0 for v in terms)
    sum(terms).backward()
    assert distiller.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    loss = distiller.distill_losses['loss_drkd']
    for module in (loss.student_glore, loss.pr_adapters, loss.student_embed, loss.adapters):
        assert all(p.grad is not None for p in module.parameters())
    for module in (loss.teacher_glore, loss.teacher_embed):
        assert all((p.grad is not None) == train_teacher_modules for p in module.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_autocast_terms_stay_float32(tmp_path):
    """Under bf16 autocast (as --amp on GPU) the terms are float32 and finite."""
    distiller = _pair(tmp_path)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 2],
                          num_classes=3)
    data = distiller.student.data_preprocessor(data, True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = distiller.loss(data['inputs'], data['data_samples'])
    for k in ('loss_pr', 'loss_ir', 'loss_ins'):
        value = losses[f'distill.loss_drkd.{k}']
        assert value.dtype == torch.float32 and torch.isfinite(value)
