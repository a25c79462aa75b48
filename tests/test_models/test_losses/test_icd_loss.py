"""ICD (Li et al., AAAI 2022): Rank Mimicking and Prediction-guided Feature Imitation.

RM is checked on hand-made numbers, then against a per-GT loop written here: its own
anchor list, its own IoU, the MaxIoUAssigner rule as a loop over priors and GTs, and the
softmax / KL with ``math``. PFI's weights and loss are worked out by hand. The last
tests run a tiny Distiller.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses.icd_loss import (PFILoss, RankMimickingLoss, prediction_difference,
                                             rank_mimicking_kl)
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=torch.float32),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- hand anchors
SIZES = [(4, 4), (2, 2)]
A, K = 2, 2


def hand_anchor(level, i, j, a):
    """Level 0: stride 8, the 8x8 cell (a = 0) and a 16x16 box on its centre (a = 1);
    level 1: stride 16, the 16x16 cell and a 32x32 box on its centre."""
    s = 8 * 2 ** level
    cx, cy, half = s * j + s / 2, s * i + s / 2, s / 2 * (1 + a)
    return [cx - half, cy - half, cx + half, cy + half]


class HandAnchors:
    num_levels = 2
    strides = [(8, 8), (16, 16)]

    def grid_priors(self, featmap_sizes, dtype=torch.float32, device='cpu'):
        assert [tuple(s) for s in featmap_sizes] == SIZES
        return [torch.tensor([hand_anchor(lvl, i, j, a) for i in range(h) for j in range(w)
                              for a in range(A)], dtype=dtype, device=device)
                for lvl, (h, w) in enumerate(SIZES)]


def hand_student(pos_iou_thr=0.5, min_pos_iou=0.0, match_low_quality=True):
    assigner = dict(type='MaxIoUAssigner', pos_iou_thr=pos_iou_thr, neg_iou_thr=0.4,
                    min_pos_iou=min_pos_iou, match_low_quality=match_low_quality)
    head = SimpleNamespace(prior_generator=HandAnchors(), num_base_priors=A,
                           use_sigmoid_cls=True,
                           train_cfg=dict(assigner=assigner, allowed_border=-1))
    return SimpleNamespace(bbox_head=head)


def gts(*images):
    return [InstanceData(bboxes=torch.tensor([b for b, _ in img], dtype=torch.float32).view(-1, 4),
                         labels=torch.tensor([c for _, c in img], dtype=torch.long))
            for img in images]


METAS = [dict(batch_input_shape=(32, 32))] * 3
# image 0: a 16x16 box at the top left (class 1) and a 12x20 box (class 0);
# image 1: one box over the bottom right; image 2: no GT
GT = gts([([0, 0, 16, 16], 1), ([10, 6, 22, 26], 0)], [([14, 14, 32, 30], 1)], [])


def logits(seed, batch=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, A * K, h, w, generator=g) * 2 for h, w in SIZES]


# --------------------------------------------------------- the reference loop
def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def loop_candidates(boxes, pos_thr, min_pos_iou):
    """Per prior (level, i, j, a), the GT it is assigned to (or None): MaxIoUAssigner's
    argmax rule, then the low-quality loop over GTs (gt_max_assign_all)."""
    priors = [(lvl, i, j, a) for lvl, (h, w) in enumerate(SIZES) for i in range(h)
              for j in range(w) for a in range(A)]
    ious = {p: [iou(hand_anchor(*p), box) for box in boxes] for p in priors}
    assigned = {}
    for p in priors:
        row = ious[p]
        best = max(range(len(boxes)), key=lambda g: (row[g], -g)) if boxes else None
        assigned[p] = best if boxes and row[best] >= pos_thr else None
    if min_pos_iou is not None:
        for g in range(len(boxes)):
            top = max(ious[p][g] for p in priors)
            if top >= min_pos_iou:
                for p in priors:
                    if ious[p][g] == top:
                        assigned[p] = g
    return assigned


def loop_rm(s_cls, t_cls, gt, pos_thr=0.5, min_pos_iou=0.0, temperature=1.0,
            normalize='image', score='prob'):
    per_image, total, num = [], 0.0, 0
    for b, inst in enumerate(gt):
        boxes, labels = inst.bboxes.tolist(), inst.labels.tolist()
        assigned = loop_candidates(boxes, pos_thr, min_pos_iou)
        image_sum = 0.0
        for g, cls in enumerate(labels):
            cands = [p for p, v in assigned.items() if v == g]
            if not cands:
                continue

            def scores(maps):
                out = []
                for lvl, i, j, a in cands:
                    z = float(maps[lvl][b, a * K + cls, i, j])
                    out.append((1 / (1 + math.exp(-z)) if score == 'prob' else z) / temperature)
                return out

            st, ss = scores(t_cls), scores(s_cls)
            zt, zs = sum(math.exp(v) for v in st), sum(math.exp(v) for v in ss)
            pt = [math.exp(v) / zt for v in st]
            ps = [math.exp(v) / zs for v in ss]
            image_sum += sum(p * math.log(p / q) for p, q in zip(pt, ps))
        if labels:
            per_image.append(image_sum / len(labels))
            total, num = total + image_sum, num + len(labels)
    if normalize == 'instance':
        return total / max(num, 1)
    return sum(per_image) / max(len(per_image), 1)


# --------------------------------------------------------------------- RM tests
def test_rm_kl_by_hand():
    # GT 0 has candidates 0 and 1, GT 1 candidate 3, prior 2 none. Teacher scores
    # 0.5, 0.75 -> p_t = (e^0.5, e^0.75) / sum = (0.437823, 0.562177); student 0.5, 0.5
    # -> p_s = (0.5, 0.5); KL = 0.437823 ln(0.875647) + 0.562177 ln(1.124353)
    # = 0.437823 (-0.132792) + 0.562177 (0.117208) = -0.058140 + 0.065891 = 0.0077519.
    # GT 1: one candidate, KL 0. 'image': (0.0077519 + 0) / 2 GTs.
    s, tt = t(0.5, 0.5, 9.0, 0.3), t(0.5, 0.75, -9.0, 0.9)
    assigned = torch.tensor([[0, 0, -1, 1]])
    valid = torch.tensor([[True, True]])
    assert_close(rank_mimicking_kl(s[None], tt[None], assigned, valid), 0.0077519 / 2)
    # T = 0.5 doubles the scores: p_t = (e^1, e^1.5)/sum = (0.377541, 0.622459);
    # KL = 0.377541 ln(0.755081) + 0.622459 ln(1.244919) = -0.106062 + 0.136362 = 0.030300
    assert_close(rank_mimicking_kl(s[None], tt[None], assigned, valid, temperature=0.5),
                 0.0302999 / 2)
    # a second image with one GT and KL 0: 'image' averages the images, 'instance' the GTs
    s2, t2, a2 = torch.stack([s, s]), torch.stack([tt, tt]), torch.tensor([[0, 0, -1, 1],
                                                                          [-1, 0, 0, -1]])
    t2[1, 1:3] = 0.2
    s2[1, 1:3] = 0.4
    v2 = torch.tensor([[True, True], [True, False]])
    assert_close(rank_mimicking_kl(s2, t2, a2, v2), (0.0077519 / 2 + 0.0) / 2)
    assert_close(rank_mimicking_kl(s2, t2, a2, v2, normalize='instance'), 0.0077519 / 3)


def test_rm_sorted_pairs_ranks_not_anchors():
    # teacher ranks anchor 1 first, student anchor 0: per anchor the KL is > 0,
    # sorted (the draft's second version) the two profiles are equal -> 0
    s, tt = t(0.9, 0.2), t(0.2, 0.9)
    assigned, valid = torch.tensor([[0, 0]]), torch.tensor([[True]])
    assert rank_mimicking_kl(s[None], tt[None], assigned, valid) > 0.01
    assert_close(rank_mimicking_kl(s[None], tt[None], assigned, valid, match='sorted'), 0.0)


@pytest.mark.parametrize('kwargs,loop_kwargs', [
    (dict(), dict()),
    (dict(normalize='instance', temperature=0.5), dict(normalize='instance', temperature=0.5)),
    (dict(score='logit'), dict(score='logit')),
    (dict(pos_iou_thr=0.3, min_pos_iou=None), dict(pos_thr=0.3, min_pos_iou=None)),
])
def test_rm_against_per_gt_loop(kwargs, loop_kwargs):
    student = hand_student()
    s_cls, t_cls = logits(0), logits(1)
    loss = RankMimickingLoss(loss_weight=1.0, **kwargs)
    value = loss(s_cls, t_cls, gt_instances=GT, batch_img_metas=METAS, student=student)
    expected = loop_rm(s_cls, t_cls, GT, **loop_kwargs)
    assert expected > 0
    assert value.item() == pytest.approx(expected, rel=1e-5)
    # the candidates themselves: image 0, GT 0 = [0,0,16,16] reaches IoU 1 with the
    # level-1 cell (0, 0) only; the 16x16 boxes on level-0 cells (0|1, 0|1) have 0.391
    assigned, _, _ = loss.candidates(s_cls, GT, METAS, student)
    idx = 2 * 16 + 0  # level 1 starts after 4 x 4 x 2 anchors; cell (0, 0), a = 0
    assert assigned[0, idx] == 0
    # with pos_iou_thr 0.3 and no low-quality matches: those four 16x16 boxes, less
    # the one on cell (1, 1), [4, 4, 20, 20], which is GT 1's: 140 / 356 = 0.393 > 0.391
    num = (assigned[0] == 0).sum().item()
    assert num == (1 if 'pos_iou_thr' not in kwargs else 4)
    assert (assigned[2] == -1).all()


def test_rm_weight_max_class_and_gradients():
    student = hand_student()
    s_cls = [c.requires_grad_() for c in logits(0)]
    t_cls = [c.requires_grad_() for c in logits(1)]
    base = RankMimickingLoss(loss_weight=1.0)(s_cls, t_cls, gt_instances=GT,
                                              batch_img_metas=METAS, student=student)
    four = RankMimickingLoss()(s_cls, t_cls, gt_instances=GT, batch_img_metas=METAS,
                               student=student)
    assert_close(four, 4 * base)  # the default weight, the draft's RetinaNet value
    four.backward()
    assert all(c.grad is not None and c.grad.abs().sum() > 0 for c in s_cls)
    assert all(c.grad is None for c in t_cls)
    # 'max': the GT class replaced by the best class; equal logits in every class
    # channel make the two readings agree
    same = [c[:, ::K].repeat_interleave(K, 1).detach() for c in logits(0)]
    same_t = [c[:, ::K].repeat_interleave(K, 1) for c in logits(1)]
    kw = dict(gt_instances=GT, batch_img_metas=METAS, student=student)
    assert_close(RankMimickingLoss(score_class='max')(same, same_t, **kw),
                 RankMimickingLoss()(same, same_t, **kw))
    # student == teacher: zero
    assert_close(RankMimickingLoss()(t_cls, t_cls, **kw), 0.0)
    # no GT in the batch: zero, still connected to the graph
    empty = RankMimickingLoss()(s_cls, t_cls, gt_instances=gts([], [], []),
                                batch_img_metas=METAS, student=student)
    assert empty.item() == 0 and empty.requires_grad


def test_rm_candidates_match_mmdet_retina_assignment():
    torch.manual_seed(0)
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    cls = [torch.zeros(2, 9 * 3, h, w) for h, w in sizes]
    gt = [InstanceData(bboxes=t([2, 3, 30, 40], [30, 20, 60, 50], [40, 40, 48, 47]),
                       labels=torch.tensor([1, 2, 0])),
          InstanceData(bboxes=t([10, 10, 50, 35]), labels=torch.tensor([2]))]
    metas = [dict(pad_shape=(64, 64), img_shape=(64, 64), batch_input_shape=(64, 64)),
             dict(pad_shape=(48, 64), img_shape=(48, 60), batch_input_shape=(64, 64))]
    assigned, _, _ = RankMimickingLoss().candidates(cls, gt, metas, retina)
    anchors, valid = retina.bbox_head.get_anchors(sizes, metas, device='cpu')
    for b in range(2):
        flags = torch.cat(valid[b])
        result = retina.bbox_head.assigner.assign(
            InstanceData(priors=torch.cat(anchors[b])[flags]), gt[b])
        expected = torch.full_like(assigned[b], -1)
        expected[flags] = torch.where(result.gt_inds > 0, result.gt_inds - 1,
                                      torch.full_like(result.gt_inds, -1))
        torch.testing.assert_close(assigned[b], expected, rtol=0, atol=0)
    assert [(assigned[0] == g).sum().item() > 0 for g in range(3)] == [True] * 3


def test_rm_errors():
    kw = dict(gt_instances=GT, batch_img_metas=METAS)
    for key, value in (('score', 'softmax'), ('score_class', 'top'), ('match', 'rank'),
                       ('normalize', 'batch'), ('temperature', 0.0), ('min_pos_iou', 'auto')):
        with pytest.raises(ValueError, match=key):
            RankMimickingLoss(**{key: value})
    with pytest.raises(ValueError, match='prior_generator'):
        RankMimickingLoss()(logits(0), logits(1), student=SimpleNamespace(), **kw)
    with pytest.raises(ValueError, match='generator has 2'):
        RankMimickingLoss()(logits(0)[:1], logits(1)[:1], student=hand_student(), **kw)
    fcos = MODELS.build(tiny_model_cfg('fcos', 8))
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    cls = [torch.zeros(1, 3, h, w) for h, w in sizes]
    with pytest.raises(ValueError, match='anchor-free'):
        RankMimickingLoss()(cls, cls, gt_instances=GT[:1], batch_img_metas=METAS[:1],
                            student=fcos)
    atss_like = hand_student()
    atss_like.bbox_head.train_cfg = dict(assigner=dict(type='SimOTAAssigner'))
    with pytest.raises(ValueError, match='pos_iou_thr'):
        RankMimickingLoss()(logits(0), logits(1), student=atss_like, **kw)
    softmax = hand_student()
    softmax.bbox_head.use_sigmoid_cls = False
    with pytest.raises(ValueError, match="score='logit'"):
        RankMimickingLoss()(logits(0), logits(1), student=softmax, **kw)


# --------------------------------------------------------------------- PFI tests
def pfi_inputs():
    # one image, one level of 1 x 2 locations, A K = 2 outputs, C = 2 feature channels
    s_cls = [t([[[0.0, 2.0]], [[1.0, 2.0]]]).view(1, 2, 1, 2)]
    t_cls = [t([[[1.0, 2.0]], [[-1.0, 2.0]]]).view(1, 2, 1, 2)]
    # P, location 0: ((1 - 0)^2 + (-1 - 1)^2) / 2 = 2.5; location 1: 0
    s_feats = [t([[[0.0, 1.0]], [[0.0, 1.0]]]).view(1, 2, 1, 2)]
    t_feats = [t([[[1.0, 3.0]], [[2.0, 3.0]]]).view(1, 2, 1, 2)]
    # feature term (mean over C), location 0: (1 + 4) / 2 = 2.5; location 1: (4 + 4) / 2 = 4
    return s_feats, t_feats, s_cls, t_cls


def test_pfi_weights_by_hand():
    _, _, s_cls, t_cls = pfi_inputs()
    assert_close(prediction_difference(s_cls, t_cls)[0], t([[2.5, 0.0]]).view(1, 1, 2))
    # probabilities: sigmoid(0) = 0.5, sigmoid(1) = 0.731059, sigmoid(-1) = 0.268941
    # location 0: ((0.731059 - 0.5)^2 + (0.268941 - 0.731059)^2) / 2
    #            = (0.053388 + 0.213553) / 2 = 0.133471
    assert_close(prediction_difference(s_cls, t_cls, 'prob')[0], t([[0.133471, 0.0]]).view(1, 1, 2))


@pytest.mark.parametrize('kwargs,expected', [
    # pixels: mean over the 2 locations of P x term: (2.5 x 2.5 + 0 x 4) / 2 = 3.125
    (dict(), 3.125),
    # sum over channels doubles the term: (2.5 x 5 + 0) / 2 = 6.25
    (dict(channel_reduce='sum'), 6.25),
    # weight: (2.5 x 2.5 + 0 x 4) / (2.5 + 0) = 2.5
    (dict(normalize='weight'), 2.5),
    # prob: (0.133471 x 2.5) / 2 = 0.166839
    (dict(pred_space='prob'), 0.166839),
])
def test_pfi_loss_by_hand(kwargs, expected):
    s_feats, t_feats, s_cls, t_cls = pfi_inputs()
    loss = PFILoss(adapter=None, **kwargs)
    assert_close(loss(s_feats, t_feats, s_cls, t_cls), 1.5 * expected)
    # two identical levels: 'pixels' averages the levels, 'weight' pools them
    assert_close(loss(s_feats * 2, t_feats * 2, s_cls * 2, t_cls * 2), 1.5 * expected)


def test_pfi_gradients_and_detach():
    s_feats, t_feats, s_cls, t_cls = pfi_inputs()
    s_feats[0].requires_grad_()
    s_cls[0].requires_grad_()
    t_feats[0].requires_grad_()
    t_cls[0].requires_grad_()
    PFILoss(adapter=None)(s_feats, t_feats, s_cls, t_cls).backward()
    assert s_cls[0].grad.abs().sum() > 0 and s_feats[0].grad.abs().sum() > 0
    assert t_cls[0].grad is None and t_feats[0].grad is None
    s_cls[0].grad = None
    PFILoss(adapter=None, detach_weight=True)(s_feats, t_feats, s_cls, t_cls).backward()
    assert s_cls[0].grad is None


def test_pfi_errors_and_adapter():
    for key, value in (('pred_space', 'softmax'), ('channel_reduce', 'max'),
                       ('normalize', 'batch')):
        with pytest.raises(ValueError, match=key):
            PFILoss(**{key: value})
    s_feats, t_feats, s_cls, t_cls = pfi_inputs()
    with pytest.raises(ValueError, match='head levels'):
        PFILoss(adapter=None)(s_feats, t_feats, s_cls * 2, t_cls * 2)
    with pytest.raises(ValueError, match='head map'):
        PFILoss(adapter=None)(s_feats, t_feats, [c[..., :1] for c in s_cls],
                              [c[..., :1] for c in t_cls])
    loss = PFILoss()  # default: a 1x1 adapter per level, also at equal widths
    loss.setup(dict(s_feats=[torch.Size([1, 3, 1, 2])], t_feats=[torch.Size([1, 2, 1, 2])],
                    s_cls=[torch.Size([1, 2, 1, 2])], t_cls=[torch.Size([1, 2, 1, 2])]))
    assert 's_feats' in loss.adapters
    value = loss([torch.randn(1, 3, 1, 2)], t_feats, s_cls, t_cls)
    assert torch.isfinite(value)


# ------------------------------------------------------------------ Distiller
def test_distiller_step_trains_student_and_adapters(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(dict(
        type='Distiller', student=tiny_model_cfg('retina', 8),
        teacher=tiny_model_cfg('retina', 16), teacher_ckpt=ckpt,
        recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
        distill_losses=dict(loss_rm=dict(type='RankMimickingLoss', loss_weight=4.0),
                            loss_pfi=dict(type='PFILoss', loss_weight=1.5)),
        probe_size=64))
    MessageHub.get_current_instance().update_info('iter', 0)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 0],
                          num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    for name in ('distill.loss_rm', 'distill.loss_pfi'):
        assert torch.isfinite(losses[name]) and losses[name].item() > 0, name
    (losses['distill.loss_rm'] + losses['distill.loss_pfi']).backward()
    assert all(p.grad is not None for p in d.distill_losses.parameters())
    assert d.student.bbox_head.retina_cls.weight.grad is not None
    assert d.student.neck.fpn_convs[0].conv.weight.grad is not None
    assert all(p.grad is None for p in d.teacher.parameters())


def test_bf16_records_compute_in_fp32():
    # --amp on CPU gives bf16 records: both losses cast them to fp32 and return fp32
    student = hand_student()
    s_cls = [c.bfloat16() for c in logits(0)]
    t_cls = [c.bfloat16() for c in logits(1)]
    kw = dict(gt_instances=GT, batch_img_metas=METAS, student=student)
    low = RankMimickingLoss()(s_cls, t_cls, **kw)
    assert low.dtype == torch.float32
    assert_close(low, RankMimickingLoss()([c.float() for c in s_cls],
                                          [c.float() for c in t_cls], **kw))
    s_feats, t_feats, s_cls, t_cls = pfi_inputs()
    value = PFILoss(adapter=None)(*[[x[0].bfloat16()] for x in (s_feats, t_feats, s_cls, t_cls)])
    assert value.dtype == torch.float32 and value.item() == pytest.approx(1.5 * 3.125)
