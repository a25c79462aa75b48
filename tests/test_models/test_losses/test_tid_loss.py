"""TID loss (Su et al. 2024, §3, Eqs. 1-12): each equation on hand-made tensors.

Expected values are written literally (worked out by hand in the comments),
never recomputed with the function under test.
"""
import pytest
import torch
from mmengine.structures import InstanceData

from mmkd_det.models.losses.tid_loss import (TIDLoss, classification_score, gt_class_probability,
                                             information_value, key_areas, localization_score,
                                             output_value, task_score, value_bands, weak_areas)
from mmkd_det.models.utils import decode_dense_outputs, prior_ious
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def b(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def assert_equal(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ Eq. 1: Score_r
def fixed_thrs(batch, num_gt, pos=0.5, neg=0.4):
    return torch.full((batch, num_gt), pos), torch.full((batch, num_gt), neg)


def test_localization_score_fixed_thresholds():
    # one image, 8 priors (A = 1), one GT
    iou = t([0.5, 0.7, 0.49, 0.45, 0.41, 0.4, 0.3, 0.0]).view(1, 8, 1)
    pos, neg = fixed_thrs(1, 1)
    # >= 0.5 -> 2 (0.5 itself included); (0.4, 0.5) -> 1.5; <= 0.4 -> 0.4 (0.4 itself)
    assert_equal(localization_score(iou, pos, neg, 1),
                 t([2.0, 2.0, 1.5, 1.5, 1.5, 0.4, 0.4, 0.4]))


def test_localization_score_max_over_gts_and_anchors():
    # 2 GTs: IoU_max over GTs per prior: 0.6, 0.45, 0.3, 0.2 -> 2, 1.5, 0.4, 0.4
    iou = t([[0.3, 0.6], [0.45, 0.2], [0.3, 0.1], [0.2, 0.0]]).view(1, 4, 2)
    pos, neg = fixed_thrs(1, 2)
    assert_equal(localization_score(iou, pos, neg, 1), t([2.0, 1.5, 0.4, 0.4]))
    # A = 2 priors per location: max of (2, 1.5) and (0.4, 0.4)
    assert_equal(localization_score(iou, pos, neg, 2), t([2.0, 0.4]))
    # A = 2 in the other order: (0.4, 2) -> 2 and (1.5, 0.4) -> 1.5
    iou2 = t([0.3, 0.55, 0.42, 0.1]).view(1, 4, 1)
    pos, neg = fixed_thrs(1, 1)
    assert_equal(localization_score(iou2, pos, neg, 2), t([2.0, 1.5]))


def test_localization_score_per_gt_thresholds():
    # ATSS style: GT 0 has pos 0.3 / neg 0.2, GT 1 has pos 0.6 / neg 0.5
    pos, neg = t([0.3, 0.6]), t([0.2, 0.5])
    iou = t([[0.35, 0.0],    # reaches GT 0's pos -> 2
             [0.25, 0.55],   # no pos reached, above GT 0's neg -> 1.5
             [0.15, 0.45],   # at most every neg -> 0.4 (0.45 would be 1.5 with 0.5/0.4)
             [0.0, 0.6],     # GT 1's pos exactly -> 2
             [0.29, 0.0]]    # above GT 0's neg (0.2) although below GT 1's -> 1.5
            ).view(1, 5, 2)
    assert_equal(localization_score(iou, pos, neg, 1), t([2.0, 1.5, 0.4, 2.0, 1.5]))


def test_localization_score_without_gt_and_iou_mode():
    iou = torch.zeros(2, 6, 0)
    pos, neg = torch.zeros(2, 0), torch.zeros(2, 0)
    assert_equal(localization_score(iou, pos, neg, 2), torch.full((2, 3), 0.4))
    assert_equal(localization_score(iou, pos, neg, 2, mode='iou'), torch.zeros(2, 3))
    # mode='iou': IoU_max over GTs and anchors, no binning
    iou = t([0.3, 0.55, 0.42, 0.1]).view(1, 4, 1)
    pos, neg = fixed_thrs(1, 1)
    assert_equal(localization_score(iou, pos, neg, 2, mode='iou'), t([0.55, 0.42]))


def test_padded_gt_is_never_positive():
    # GT 1 is padding (valid False) but sits exactly on predicted box 1
    gt = t([[0, 0, 10, 10], [20, 20, 30, 30]]).view(1, 2, 4)
    valid = b([True, False])
    boxes = t([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]).view(1, 3, 4)
    iou = prior_ious(boxes, gt, valid)
    assert_equal(iou, t([[1.0, -1.0], [0.0, -1.0], [0.0, -1.0]]).view(1, 3, 2))
    pos, neg = fixed_thrs(1, 2)
    assert_equal(localization_score(iou, pos, neg, 1), t([2.0, 0.4, 0.4]))
    assert_equal(localization_score(iou, pos, neg, 1, mode='iou'), t([1.0, 0.0, 0.0]))


# ---------------------------------------------------------- Eq. 2: Score_c
def test_classification_score_top_gt_class_only():
    # 2 images, 40 locations, 3 classes, A = 1. Image 0: one GT of class 1 and a
    # padded entry (label 0, invalid); image 1: no GT.
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 40, 3, generator=g) * 0.5     # all below 0.5
    scores[0, 7, 1] = 0.8    # best of the GT class
    scores[0, 20, 1] = 0.7   # second best
    scores[0, 35, 1] = 0.6   # best on the last 8 locations
    scores[0, 3, 2] = 0.99   # class 2 is not in image 0: must not count
    scores[0, 12, 0] = 0.95  # class 0 only as padding label: must not count
    scores[1, 5, 1] = 0.99
    labels = torch.tensor([[1, 0], [0, 0]])
    valid = b([True, False], [False, False])
    prob = gt_class_probability(scores, labels, valid, 1)
    assert prob.shape == (2, 40)
    assert prob[0, 7].item() == pytest.approx(0.8)
    assert prob[0, 3].item() == scores[0, 3, 1].item()
    assert prob[0, 12].item() == scores[0, 12, 1].item()
    assert_equal(prob[1], torch.zeros(40))
    # top 2.5 % of 40 locations = exactly 1 location
    score_c = classification_score(prob, valid.any(1), 0.025, 'image', [40])
    expected = torch.ones(2, 40)
    expected[0, 7] = 1.5
    assert_equal(score_c, expected)
    # scope 'batch': ceil(0.025 * 80) = 2, both in image 0 (image 1 has no GT class)
    expected[0, 20] = 1.5
    assert_equal(classification_score(prob, valid.any(1), 0.025, 'batch', [32, 8]),
                 expected)
    # scope 'level' on 32 + 8 locations: ceil(0.8) = ceil(0.2) = 1 per level
    expected[0, 20] = 1.0
    expected[0, 35] = 1.5
    assert_equal(classification_score(prob, valid.any(1), 0.025, 'level', [32, 8]),
                 expected)


def test_gt_class_probability_max_over_anchors_and_classes():
    # 1 image, 2 locations x A=2, classes 0 and 2 present
    scores = t([[0.1, 0.9, 0.2], [0.3, 0.0, 0.1]],
               [[0.05, 0.0, 0.6], [0.4, 0.0, 0.0]]).view(1, 4, 3)
    labels = torch.tensor([[0, 2]])
    valid = b([True, True])
    assert_close(gt_class_probability(scores, labels, valid, 2), t([0.3, 0.6]))


def test_gt_class_probability_class_zero_with_padding():
    """Image 0 has one GT of class 0, image 1 has two GTs: image 0's second slot
    is padding with label 0 (as ``pad_gt`` writes it). Class 0 is still present
    in image 0."""
    scores = torch.full((2, 4, 3), 0.1)
    scores[0, 2, 0] = 0.9
    scores[1, 1, 2] = 0.8
    labels = torch.tensor([[0, 0], [0, 2]])
    valid = b([True, False], [True, True])
    assert_close(gt_class_probability(scores, labels, valid, 1),
                 t([0.1, 0.1, 0.9, 0.1], [0.1, 0.8, 0.1, 0.1]))


# ------------------------------------------------------------ Eq. 3: Score
def test_task_score():
    score_c = t([1.5, 1.0, 1.5, 1.0])
    score_r = t([2.0, 2.0, 0.4, 1.5])
    assert_close(task_score(score_c, score_r, ('cls', 'reg')), t([3.0, 2.0, 0.6, 1.5]))
    assert_equal(task_score(score_c, score_r, ('cls',)), t([1.5, 1.0, 1.5, 1.0]))
    assert_equal(task_score(score_c, score_r, ('reg',)), t([2.0, 2.0, 0.4, 1.5]))


# ---------------------------------------------------- Eqs. 4-5: key / weak
def test_key_areas_ties_broken_by_quality():
    score = t([3.0, 3.0, 2.0, 0.4, 3.0, 1.5])
    quality = t([0.2, 0.9, 1.0, 1.0, 0.5, 0.3])
    # three locations score 3: the two of highest quality (1, 4)
    assert_equal(key_areas(score, quality, 2, 'image', [6]), b([0, 1, 0, 0, 1, 0]))
    # a higher quality never lifts score 2 above a score 3
    assert_equal(key_areas(score, quality, 3, 'image', [6]), b([1, 1, 0, 0, 1, 0]))
    # fraction: ceil(0.5 * 6) = 3
    assert_equal(key_areas(score, quality, 0.5, 'image', [6]), b([1, 1, 0, 0, 1, 0]))


def test_weak_areas_teacher_equals_student_is_empty():
    score = t([3.0, 2.0, 0.6, 1.5])
    quality = t([0.5, 0.4, 0.3, 0.2])
    boxes = t([0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10])[None]
    for nms in (0.5, None):
        assert not bool(weak_areas(score, score, quality, quality, boxes, 2, 'image', [4],
                                   nms).any())


def test_weak_areas_only_teacher_higher():
    score_t = t([3.0, 2.0, 0.6, 1.5])
    score_s = t([0.6, 3.0, 0.6, 1.0])   # gaps 2.4, -1, 0, 0.5
    zeros = torch.zeros(1, 4)
    boxes = t([0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10])[None]
    # gamma 3 but only 2 candidates
    assert_equal(weak_areas(score_t, score_s, zeros, zeros, boxes, 3, 'image', [4], None),
                 b([1, 0, 0, 1]))
    assert_equal(weak_areas(score_t, score_s, zeros, zeros, boxes, 3, 'image', [4], 0.5),
                 b([1, 0, 0, 1]))


def test_weak_areas_nms():
    # gaps 2.4, 2.0, 1.0, 0; boxes 0 and 1 overlap with IoU 90 / 110 = 0.82
    score_t = t([3.0, 3.0, 1.5, 1.0], [3.0, 3.0, 1.5, 1.0])
    score_s = t([0.6, 1.0, 0.5, 1.0], [0.6, 1.0, 0.5, 1.0])
    zeros = torch.zeros(2, 4)
    box = t([0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10])
    boxes = torch.stack([box, box])      # per image: the images do not suppress each other
    with_nms = weak_areas(score_t, score_s, zeros, zeros, boxes, 2, 'image', [4], 0.5)
    assert_equal(with_nms, b([1, 0, 1, 0], [1, 0, 1, 0]))
    without = weak_areas(score_t, score_s, zeros, zeros, boxes, 2, 'image', [4], None)
    assert_equal(without, b([1, 1, 0, 0], [1, 1, 0, 0]))


# ---------------------------------------------------- Eqs. 6-7: V_output
def test_output_value():
    score_t = t([3.0, 2.0, 0.6, 1.5])
    key = b([1, 1, 0, 0])
    weak = b([1, 0, 1, 0])
    # Score_key = [3, 2, 0, 0], Score_weak = [1.5, 1, 1.5, 1]
    assert_equal(output_value(score_t, key, weak, ('key', 'weak')), t([4.5, 2.0, 0.0, 0.0]))
    assert_equal(output_value(score_t, key, weak, ('key', 'weak'), 'indicator'),
                 t([1.5, 1.0, 0.0, 0.0]))
    assert_equal(output_value(score_t, key, weak, ('key',)), t([3.0, 2.0, 0.0, 0.0]))
    assert_equal(output_value(score_t, key, weak, ('key',), 'indicator'),
                 t([1.0, 1.0, 0.0, 0.0]))
    assert_equal(output_value(score_t, key, weak, ('weak',)), t([1.5, 1.0, 1.5, 1.0]))


# ------------------------------------------------------ Eq. 9: V_information
def test_information_value_single_gt():
    # GT 20 x 40 -> dists = 0.5 * 40 = 20
    gt = t([10, 10, 30, 50]).view(1, 1, 4)
    valid = b([True])
    centers = t([20, 30],    # inside -> 1
                [10, 30],    # on the left border -> 1
                [30, 50],    # on the corner -> 1
                [5, 30],     # d = 5, r = 0.25
                [34, 53],    # d = hypot(4, 3) = 5, r = 0.25
                [20, 60],    # d = 10, r = 0.5
                [20, 75],    # d = 25, r = 1.25 -> beyond the vicinity
                [80, 80])    # far (d = hypot(50, 30) = 58.3)
    assert_close(information_value(centers, gt, valid),
                 t([1.0, 1.0, 1.0, 0.75, 0.75, 0.5, 0.0, 0.0]))
    assert_close(information_value(centers, gt, valid, decay='as_printed'),
                 t([1.0, 1.0, 1.0, 0.25, 0.25, 0.5, 0.0, 0.0]))
    # vicinity 1.0 -> dists 40: r = 0.125, 0.125, 0.25, 0.625
    assert_close(information_value(centers, gt, valid, vicinity=1.0),
                 t([1.0, 1.0, 1.0, 0.875, 0.875, 0.75, 0.375, 0.0]))


def test_information_value_closest_gt_by_r():
    # A: 20 x 40 (dists 20); B: 8 x 8 (dists 4)
    gt = t([[10, 10, 30, 50], [58, 10, 66, 18]]).view(1, 2, 4)
    valid = b([True, True])
    # (45, 15): d_A = 15 (r 0.75), d_B = 13 (r 3.25): A is used although B is nearer
    # (60, 20): d_B = 2 (r 0.5), d_A = 30 (r 1.5)
    # (62, 14): inside B
    centers = t([45, 15], [60, 20], [62, 14])
    assert_close(information_value(centers, gt, valid), t([0.25, 0.5, 1.0]))
    assert_close(information_value(centers, gt, valid, decay='as_printed'),
                 t([0.75, 0.5, 1.0]))
    # B invalid (padding): (60, 20) is then 30 px from A, r 1.5 -> 0
    assert_close(information_value(centers, gt, b([True, False])), t([0.25, 0.0, 0.0]))


def test_information_value_border_degenerate_and_empty():
    # GT touching the image border (x1 = y1 = 0), 16 x 8 -> dists 8
    gt = t([0, 0, 16, 8]).view(1, 1, 4)
    centers = t([0, 0], [0, 4], [4, 12], [20, 4], [4, 20])
    assert_close(information_value(centers, gt, b([True])), t([1.0, 1.0, 0.5, 0.5, 0.0]))
    # zero-size box: dists clamped to 1 px
    gt = t([20, 20, 20, 20]).view(1, 1, 4)
    centers = t([20, 20], [20.5, 20], [20, 19.75], [24, 20])
    v = information_value(centers, gt, b([True]))
    assert torch.isfinite(v).all()
    assert_close(v, t([1.0, 0.5, 0.75, 0.0]))
    v = information_value(centers, gt, b([True]), decay='as_printed')
    assert torch.isfinite(v).all()
    assert_close(v, t([1.0, 0.5, 0.25, 0.0]))
    # no GT at all, and an image whose only GT slot is padding
    assert_equal(information_value(centers, torch.zeros(2, 0, 4), torch.zeros(2, 0).bool()),
                 torch.zeros(2, 4))
    gt = t([[20, 20, 30, 30]], [[0, 0, 0, 0]])
    assert_equal(information_value(centers, gt, b([True], [False]))[1], torch.zeros(4))


# --------------------------------------------------------- Eqs. 11-12: bands
def test_value_bands():
    v = t([2.0, 1.0, 0.5, 0.01, 0.005, 0.0])
    m, w = value_bands(v)
    assert_close(m, t([2.0, 1.0, 0.35, 0.007, 0.00025, 0.0]))
    assert_close(w, t([2.0, 1.0, 0.35, 0.007, 0.00025, 0.0]))
    m, w = value_bands(v, alphas=(2.0, 3.0, 4.0))
    assert_close(m, t([2.0, 1.0, 0.35, 0.007, 0.00025, 0.0]))
    assert_close(w, t([4.0, 2.0, 1.05, 0.021, 0.001, 0.0]))
    m, w = value_bands(v, low_band='constant')
    assert_close(m, t([2.0, 1.0, 0.35, 0.007, 0.05, 0.05]))
    assert_close(w, t([2.0, 1.0, 0.35, 0.007, 0.05, 0.05]))


def test_value_bands_floor_is_monotonic_where_constant_is_not():
    # v rising; 'constant': the medium band starts at 0.7 x 0.01 = 0.007 < 0.05 of the
    # low band. 'floor': max(0.7 v, 0.05) below 1, v from 1 on:
    #   0 -> 0.05, 0.005 -> 0.05, 0.01 -> max(0.007, 0.05) = 0.05,
    #   0.05 -> max(0.035, 0.05) = 0.05, 1/14 -> 0.05 exactly, 0.1 -> 0.07, 0.5 -> 0.35,
    #   0.99 -> 0.693, 1 -> 1, 2 -> 2
    v = torch.tensor([0.0, 0.005, 0.01, 0.05, 1 / 14, 0.1, 0.5, 0.99, 1.0, 2.0])
    m, w = value_bands(v, low_band='floor')
    expected = torch.tensor([0.05, 0.05, 0.05, 0.05, 0.05, 0.07, 0.35, 0.693, 1.0, 2.0])
    assert_close(m, expected)
    assert_close(w, expected)
    assert bool((m[1:] >= m[:-1]).all())
    m_const, _ = value_bands(v, low_band='constant')
    # V = 0.01 weighs 0.007 under 'constant', 7x less than background's 0.05
    assert_close(m_const[:4], torch.tensor([0.05, 0.05, 0.007, 0.035]))
    assert not bool((m_const[1:] >= m_const[:-1]).all())
    # band alphas still go by v's band: low 4, medium 3, high 2
    _, w = value_bands(torch.tensor([0.005, 0.01, 0.5, 1.0]), alphas=(2.0, 3.0, 4.0),
                       low_band='floor')
    assert_close(w, torch.tensor([0.2, 0.15, 1.05, 2.0]))


# ------------------------------------------------------ decode_dense_outputs
def build_head(kind, **head_kw):
    cfg = tiny_model_cfg(kind, 8)
    cfg['bbox_head'].update(head_kw)
    torch.manual_seed(0)
    return MODELS.build(cfg).bbox_head


def level_shapes(size=64, strides=(8, 16, 32, 64, 128)):
    return [(-(-size // s), -(-size // s)) for s in strides]


def test_decode_retina_matches_per_image_coder():
    head = build_head('retina')
    g = torch.Generator().manual_seed(1)
    sizes = level_shapes()
    a, k = head.num_base_priors, head.cls_out_channels
    cls = [torch.randn(2, a * k, h, w, generator=g) for h, w in sizes]
    reg = [torch.randn(2, a * 4, h, w, generator=g) * 0.5 for h, w in sizes]
    out = decode_dense_outputs(head, cls, reg)
    assert out.num_base_priors == 9
    assert out.level_sizes == [64, 16, 4, 1, 1]
    anchors = torch.cat(head.prior_generator.grid_priors(sizes, device='cpu'))
    assert_equal(out.priors, anchors)
    # location centres: anchor centres (mmdet's anchors are centred on j * stride)
    assert_close(out.centers[:3], t([0, 0], [8, 0], [16, 0]))
    assert_close(out.centers[[8, 64, 65]], t([0, 8], [0, 0], [16, 0]))
    for i in range(2):
        deltas = torch.cat([r[i].permute(1, 2, 0).reshape(-1, 4) for r in reg])
        expected = head.bbox_coder.decode(anchors, deltas)
        assert_close(out.boxes[i], expected)
        probs = torch.cat([c[i].permute(1, 2, 0).reshape(-1, k) for c in cls]).sigmoid()
        assert_close(out.scores[i], probs)


@pytest.mark.parametrize('kind', ['retina', 'fcos'])
def test_decode_with_classes_is_the_full_scores_columns(kind):
    """``classes=``: the (B, P, G) scores are the full (B, P, K) scores' columns of
    each image's classes (repeats and class 0 included), and the GT-class
    probability computed from them equals the one from the full scores."""
    head = build_head(kind)
    g = torch.Generator().manual_seed(3)
    a, k = head.num_base_priors, head.cls_out_channels
    cls = [torch.randn(2, a * k, h, w, generator=g) for h, w in level_shapes()]
    reg = [torch.randn(2, a * 4, h, w, generator=g) * 0.5 for h, w in level_shapes()]
    labels = torch.tensor([[1, 0, 1], [k - 1, 0, 0]])
    valid = b([True, True, True], [True, False, False])
    full = decode_dense_outputs(head, cls, reg)
    part = decode_dense_outputs(head, cls, reg, classes=labels)
    for i in range(2):
        assert_equal(part.scores[i], full.scores[i][:, labels[i]])
    assert_equal(part.boxes, full.boxes)
    assert_equal(gt_class_probability(part.scores, labels, valid, a, gathered=True),
                 gt_class_probability(full.scores, labels, valid, a))
    empty = decode_dense_outputs(head, cls, reg, classes=labels[:, :0])
    assert_equal(gt_class_probability(empty.scores, labels[:, :0], valid[:, :0], a,
                                      gathered=True),
                 torch.zeros(2, full.scores.shape[1] // a))


@pytest.mark.parametrize('norm_on_bbox', [True, False])
def test_decode_fcos_train_and_eval_agree(norm_on_bbox):
    head = build_head('fcos', norm_on_bbox=norm_on_bbox)
    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(2, 16, h, w, generator=g) for h, w in level_shapes()]
    with torch.no_grad():
        head.train()
        cls_t, reg_t, _ = head(feats)
        out_t = decode_dense_outputs(head, cls_t, reg_t)
        head.eval()
        cls_e, reg_e, _ = head(feats)
        out_e = decode_dense_outputs(head, cls_e, reg_e)
    if norm_on_bbox:   # the raw outputs do differ (by the stride)
        assert not torch.allclose(reg_t[0], reg_e[0])
    assert_close(out_t.boxes, out_e.boxes)
    assert out_e.num_base_priors == 1
    # eval outputs are pixel distances from the points
    points = torch.cat(head.prior_generator.grid_priors(level_shapes(), device='cpu'))
    assert_close(out_e.centers, points)
    assert_close(points[:2], t([4, 4], [12, 4]))
    for i in range(2):
        d = torch.cat([r[i].permute(1, 2, 0).reshape(-1, 4) for r in reg_e])
        expected = torch.stack([points[:, 0] - d[:, 0], points[:, 1] - d[:, 1],
                                points[:, 0] + d[:, 2], points[:, 1] + d[:, 3]], 1)
        assert_close(out_e.boxes[i], expected)


def test_decode_gfl_matches_manual_integral():
    head = build_head('gfl')
    g = torch.Generator().manual_seed(3)
    sizes = level_shapes()
    n = head.reg_max + 1
    cls = [torch.randn(2, head.cls_out_channels, h, w, generator=g) for h, w in sizes]
    reg = [torch.randn(2, 4 * n, h, w, generator=g) * 2 for h, w in sizes]
    out = decode_dense_outputs(head, cls, reg)
    anchors = head.prior_generator.grid_priors(sizes, device='cpu')
    proj = torch.arange(n, dtype=torch.float32)
    for i in range(2):
        expected = []
        for lvl, stride in enumerate([8, 16, 32, 64, 128]):
            p = reg[lvl][i].permute(1, 2, 0).reshape(-1, 4, n).softmax(-1)
            dist = (p * proj).sum(-1) * stride                  # (HW, 4): l, t, r, b
            cx = (anchors[lvl][:, 0] + anchors[lvl][:, 2]) / 2
            cy = (anchors[lvl][:, 1] + anchors[lvl][:, 3]) / 2
            expected.append(torch.stack([cx - dist[:, 0], cy - dist[:, 1],
                                         cx + dist[:, 2], cy + dist[:, 3]], 1))
        assert_close(out.boxes[i], torch.cat(expected))


# ------------------------------------------------------------------ TIDLoss
@pytest.mark.parametrize('kwargs', [
    dict(topk_scope='bad'), dict(tasks=()), dict(tasks=('cls', 'box')), dict(gamma=0.0),
    dict(gamma=1.5), dict(gamma=0), dict(cls_top=-0.1), dict(areas=()),
    dict(key_mode='x'), dict(info_decay='x'), dict(low_band='x'), dict(normalize='x'),
    dict(loc_score='x'), dict(band_alphas=(1.0, 1.0))])
def test_tid_loss_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        TIDLoss(**kwargs)


def gt_list():
    return [InstanceData(bboxes=t([0, 8, 24, 40], [30, 20, 60, 56]),
                         labels=torch.tensor([1, 2])),
            InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]


def head_outputs(model, x):
    feats = model.extract_feat(x)
    outs = model.bbox_head(feats)
    return list(feats), list(outs[0]), list(outs[1])


def test_fcos_needs_iou_thrs():
    torch.manual_seed(0)
    student = MODELS.build(tiny_model_cfg('fcos', 8))
    teacher = MODELS.build(tiny_model_cfg('fcos', 8))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _, s_cls, s_reg = head_outputs(student, x)
        _, t_cls, t_reg = head_outputs(teacher, x)
    with pytest.raises(ValueError, match='iou_thrs'):
        TIDLoss().masks(s_cls, t_cls, s_reg, t_reg, gt_list(), student, teacher)
    m = TIDLoss(iou_thrs=(0.5, 0.4)).masks(s_cls, t_cls, s_reg, t_reg, gt_list(),
                                           student, teacher)
    assert m['weight'].shape == (2, 64 + 16 + 4 + 1 + 1)


@pytest.mark.parametrize('normalize', ['mask', 'batch'])
def test_tid_loss_value_from_masks(normalize):
    torch.manual_seed(0)
    student = MODELS.build(tiny_model_cfg('retina', 8)).eval()
    teacher = MODELS.build(tiny_model_cfg('retina', 16)).eval()
    x = torch.randn(2, 3, 64, 64)
    s_feats, s_cls, s_reg = head_outputs(student, x)
    with torch.no_grad():
        t_feats, t_cls, t_reg = head_outputs(teacher, x)
    loss = TIDLoss(loss_weight=0.7, normalize=normalize)
    loss.setup(dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats]))
    value = loss(s_feats, t_feats, s_cls, t_cls, s_reg, t_reg, gt_instances=gt_list(),
                 student=student, teacher=teacher)
    masks = loss.masks(s_cls, t_cls, s_reg, t_reg, gt_list(), student, teacher)
    weight = masks['weight']
    assert masks['shapes'] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert weight.sum() > 0 and not weight.requires_grad
    # image without GT: V_info = 0, all low band, constant 0.05 (default low_band)
    assert_equal(weight[1], torch.full((weight.shape[1],), 0.05))
    adapted = loss.adapt('s_feats', s_feats, t_feats)
    total, start = 0.0, 0
    for s, tf in zip(adapted, t_feats):
        _, _, h, w = tf.shape
        for i in range(2):
            for y in range(h):
                for x_ in range(w):
                    sq = ((tf[i, :, y, x_] - s[i, :, y, x_]) ** 2).sum()
                    total = total + weight[i, start + y * w + x_] * sq
        start += h * w
    norm = weight.sum() if normalize == 'mask' else 2
    assert value.item() == pytest.approx(0.7 * total.item() / float(norm), rel=1e-5)
    value.backward()
    assert all(p.grad is not None for p in loss.adapters.parameters())
    assert student.neck.fpn_convs[0].conv.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_tid_loss_floor_low_band_weights():
    torch.manual_seed(0)
    student = MODELS.build(tiny_model_cfg('retina', 8)).eval()
    teacher = MODELS.build(tiny_model_cfg('retina', 16)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _, s_cls, s_reg = head_outputs(student, x)
        _, t_cls, t_reg = head_outputs(teacher, x)
    args = (s_cls, t_cls, s_reg, t_reg, gt_list(), student, teacher)
    # every location a key area and a narrow vicinity: some V fall in [0.01, 1/14)
    floor = TIDLoss(low_band='floor', gamma=1.0, vicinity=0.3).masks(*args)
    const = TIDLoss(gamma=1.0, vicinity=0.3).masks(*args)
    v = floor['value']
    assert_equal(v, const['value'])
    # 'floor' written out: v from 1 on, else max(0.7 v, 0.05)
    assert_close(floor['weight'], torch.where(v >= 1, v, (0.7 * v).clamp(min=0.05)))
    # it differs from 'constant' exactly on the medium band below 1/14
    differs = (floor['weight'] - const['weight']).abs() > 1e-9
    assert_equal(differs, (v >= 0.01) & (0.7 * v < 0.05))
    assert bool(differs.any())


def test_single_task_or_area_may_be_a_string():
    # --cfg-options tasks=cls gives a string; it means ('cls',), not the letters c, l, s
    loss = TIDLoss(tasks='cls', areas='weak')
    assert loss.tasks == ('cls', ) and loss.areas == ('weak', )
    with pytest.raises(ValueError, match='tasks'):
        TIDLoss(tasks='box')
