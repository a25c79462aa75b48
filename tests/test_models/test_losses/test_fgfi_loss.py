"""FGFI (Wang et al., CVPR 2019): imitation region mask and imitation loss.

Masks are checked on hand-placed anchors with the IoUs worked out in the comments,
and on a real tiny RetinaNet's anchors against a per-anchor, per-box loop written
here (its own IoU). Loss values come from those literal masks.
"""
from types import SimpleNamespace

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses.fgfi_loss import FGFILoss, imitation_masks
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def gts(*boxes_per_image):
    return [InstanceData(bboxes=torch.tensor(b, dtype=torch.float32).view(-1, 4),
                         labels=torch.zeros(len(b), dtype=torch.long))
            for b in boxes_per_image]


class HandAnchors:
    """Level 0: 4x4 cells, stride 8, two anchors per cell (A = 2): the 8x8 cell
    and a 16x16 box centred on it. Level 1: 2x2 cells, stride 16, one 16x16 anchor."""
    strides = [(8, 8), (16, 16)]
    num_levels = 2

    def grid_priors(self, featmap_sizes, dtype=torch.float32, device='cpu'):
        assert [tuple(s) for s in featmap_sizes] == [(4, 4), (2, 2)]
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
# image 0: a box equal to the 8x8 anchor of cell (0, 0) and a 16x16 box over cells 1-2;
# image 1: a box in the bottom-right corner (touching two image borders); image 2: no GT
GT = gts([[0, 0, 8, 8], [8, 8, 24, 24]], [[16, 16, 32, 32]], [])


def features(batch=3, channels=2):
    return [torch.zeros(batch, channels, 4, 4), torch.zeros(batch, channels, 2, 2)]


def build(**cfg):
    loss = MODELS.build(dict(type='FGFILoss', adapter=None, **cfg))
    f = features()
    loss.setup(dict(s_feats=[x.shape for x in f], t_feats=[x.shape for x in f]), 'fgfi')
    return loss


# Box [0,0,8,8]: IoU 1 with the 8x8 anchor of cell (0,0); 0.25 with the 16x16 anchor
# there and with the level-1 anchor (0,0); psi = 0.5 -> only level 0 cell (0,0).
# Box [8,8,24,24]: 8x8 anchors of cells (1..2, 1..2) IoU 64/256 = 0.25; 16x16 anchors of
# the same cells 144/368 = 0.391 (the max); other 16x16 anchors <= 48/464 = 0.103;
# level-1 anchors 64/448 = 0.143. psi = 0.196 -> cells (1..2, 1..2) of level 0.
# Box [16,16,32,32]: IoU 1 with level-1 anchor (1,1); level-0 anchors <= 0.391 < 0.5.
EXPECTED_ALL = (
    t([[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]],
      [[0, 0, 0, 0]] * 4,
      [[0, 0, 0, 0]] * 4),
    t([[0, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 0], [0, 0]]),
)


def test_masks_hand_anchors_all_levels():
    masks = build().masks(features(), GT, HAND_STUDENT, METAS)
    for actual, expected in zip(masks, EXPECTED_ALL):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_masks_roi_level_assignment():
    # finest_scale 56: all three boxes (<= 16 px) go to level 0. Image 0 is unchanged
    # (its maxima were on level 0). Box [16,16,32,32] now takes psi from level 0 only:
    # max 0.391 (16x16 anchors of cells (2..3, 2..3)), psi 0.196; the 8x8 anchors of
    # cells (2..3, 2..3) have 0.25 -> those four cells; level 1 is never marked.
    masks = build(gt_levels='roi').masks(features(), GT, HAND_STUDENT, METAS)
    lvl0_img1 = t([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1])
    torch.testing.assert_close(masks[0][0], EXPECTED_ALL[0][0], rtol=0, atol=0)
    torch.testing.assert_close(masks[0][1], lvl0_img1, rtol=0, atol=0)
    assert masks[1].sum() == 0
    # finest_scale 8: [0,0,8,8] (sqrt wh = 8) -> level 0; the 16 px boxes -> level 1.
    # [8,8,24,24] on level 1: every anchor has 0.143 > psi = 0.071 -> all four cells.
    masks = build(gt_levels='roi', finest_scale=8).masks(features(), GT, HAND_STUDENT, METAS)
    torch.testing.assert_close(masks[0][0], t([1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0],
                                              [0, 0, 0, 0]), rtol=0, atol=0)
    torch.testing.assert_close(masks[1], t([[1, 1], [1, 1]], [[0, 0], [0, 1]],
                                           [[0, 0], [0, 0]]), rtol=0, atol=0)


def test_thr_factor_zero_marks_every_overlapping_anchor():
    # psi = 0: any IoU > 0. Box [0,0,8,8] overlaps the 8x8 anchor of (0,0), the 16x16
    # anchors of (0,0), (0,1), (1,0), (1,1) (each reaches into [0,8]^2), and the
    # level-1 anchor (0,0).
    masks = build(thr_factor=0.0).masks(features(1), gts([[0, 0, 8, 8]]), HAND_STUDENT,
                                        METAS[:1])
    torch.testing.assert_close(masks[0][0], t([1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0],
                                              [0, 0, 0, 0]), rtol=0, atol=0)
    torch.testing.assert_close(masks[1][0], t([1, 0], [0, 0]), rtol=0, atol=0)


class TwoAnchors:
    """One 1x2 level, one anchor per cell: [0,0,4,4] and [0,0,8,4]."""
    strides = [(4, 4)]
    num_levels = 1

    def grid_priors(self, featmap_sizes, dtype=torch.float32, device='cpu'):
        return [torch.tensor([[0, 0, 4, 4], [0, 0, 8, 4]], dtype=dtype, device=device)]


def test_iou_legacy_offset_hand_case():
    # GT [0,0,4,4]: anchor 0 is the GT (IoU 1 both ways), so psi = 0.5.
    # anchor 1 [0,0,8,4]: mmdet IoU 16 / 32 = 0.5, not > psi -> off;
    # legacy (+1): areas 5x5 = 25 and 9x5 = 45, overlap 5x5 = 25 -> 25 / 45 = 0.556 -> on
    gt, valid = t([[0, 0, 4, 4]]).view(1, 1, 4), torch.tensor([[True]])
    priors = TwoAnchors().grid_priors([(1, 2)])
    (mask, ) = imitation_masks(priors, [(1, 2)], gt, valid)
    torch.testing.assert_close(mask, t([[1, 0]]).view(1, 1, 2), rtol=0, atol=0)
    (mask, ) = imitation_masks(priors, [(1, 2)], gt, valid, iou_legacy_offset=True)
    torch.testing.assert_close(mask, t([[1, 1]]).view(1, 1, 2), rtol=0, atol=0)
    # through the loss option
    student = SimpleNamespace(bbox_head=SimpleNamespace(prior_generator=TwoAnchors()))
    feats = [torch.zeros(1, 2, 1, 2)]
    for legacy, expected in ((False, [[1, 0]]), (True, [[1, 1]])):
        loss = MODELS.build(dict(type='FGFILoss', adapter=None, iou_legacy_offset=legacy))
        (mask, ) = loss.masks(feats, gts([[0, 0, 4, 4]]), student)
        torch.testing.assert_close(mask, t(expected).view(1, 1, 2), rtol=0, atol=0)


def test_loss_value_and_normalisers():
    # teacher 0; student channel 0 = 1, channel 1 = 2 on level 0 (5 per location),
    # 3 and 3 on level 1 (18 per location). Masked: 5 locations on level 0, 1 on level 1.
    t_feats = features()
    s_feats = [torch.cat([torch.ones(3, 1, 4, 4), torch.full((3, 1, 4, 4), 2.0)], 1),
               torch.full((3, 2, 2, 2), 3.0)]
    kw = dict(gt_instances=GT, student=HAND_STUDENT, batch_img_metas=METAS)
    # (5 x 5 + 18) / (2 x 6)
    assert build()(s_feats, t_feats, **kw).item() == pytest.approx(43 / 12)
    # per level: 25 / (2 x 5) + 18 / (2 x 1)
    assert build(normalize='level')(s_feats, t_feats, **kw).item() == pytest.approx(11.5)
    assert build(loss_weight=0.01)(s_feats, t_feats, **kw).item() == pytest.approx(0.43 / 12)


def test_batch_without_gt_is_zero_and_gradients():
    t_feats = [f.requires_grad_() for f in features()]
    s_feats = [torch.randn(3, 2, 4, 4, requires_grad=True),
               torch.randn(3, 2, 2, 2, requires_grad=True)]
    loss = build()
    empty = gts([], [], [])
    zero = loss(s_feats, t_feats, gt_instances=empty, student=HAND_STUDENT,
                batch_img_metas=METAS)
    assert zero.item() == 0.0
    value = loss(s_feats, t_feats, gt_instances=GT, student=HAND_STUDENT, batch_img_metas=METAS)
    value.backward()
    assert all(f.grad is None for f in t_feats)
    for g, m in zip([s.grad for s in s_feats], EXPECTED_ALL):
        on = m.bool()[:, None].expand_as(g)
        assert bool((g[on] != 0).all()) and bool((g[~on] == 0).all())


def test_default_adapter_3x3_truncated_init():
    loss = FGFILoss()
    f = features()
    loss.setup(dict(s_feats=[x.shape for x in f], t_feats=[x.shape for x in f]), 'fgfi')
    conv = loss.adapters['s_feats'].convs[0]
    assert conv.kernel_size == (3, 3)
    assert conv.weight.abs().max() <= 2e-4 and conv.weight.std() > 2e-5


# ------------------------------------------------------- real anchors vs loop
def loop_iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_masks(priors, sizes, boxes, thr, box_levels=None):
    """Per-image, per-box, per-anchor FGFI rule."""
    levels = [[p.tolist() for p in lvl] for lvl in priors]
    out = [torch.zeros(h, w) for h, w in sizes]
    for g, box in enumerate(boxes):
        allowed = range(len(levels)) if box_levels is None else [box_levels[g]]
        best = max(loop_iou(a, box) for lvl in allowed for a in levels[lvl])
        for lvl in allowed:
            h, w = sizes[lvl]
            per_loc = len(levels[lvl]) // (h * w)
            for k, a in enumerate(levels[lvl]):
                if loop_iou(a, box) > thr * best:
                    loc = k // per_loc
                    out[lvl][loc // w, loc % w] = 1.0
    return out


@pytest.fixture(scope='module')
def retina():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmkd_det'):  # module fixture: no autouse scope
        return MODELS.build(tiny_model_cfg('retina', 8))


def test_masks_match_loop_on_retina_anchors(retina):
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    feats = [torch.zeros(2, 4, h, w) for h, w in sizes]
    boxes = [[[0.0, 0.0, 20.0, 30.0], [24.0, 16.0, 56.0, 48.0], [30.0, 30.0, 64.0, 64.0]],
             [[2.0, 40.0, 60.0, 62.0]]]
    priors = retina.bbox_head.prior_generator.grid_priors(sizes, device='cpu')
    metas = [dict(batch_input_shape=(64, 64))] * 2
    for thr in (0.5, 0.3):
        loss = FGFILoss(thr_factor=thr, adapter=None)
        masks = loss.masks(feats, gts(*boxes), retina, metas)
        for img, img_boxes in enumerate(boxes):
            expected = loop_masks(priors, sizes, img_boxes, thr)
            for lvl in range(5):
                torch.testing.assert_close(masks[lvl][img], expected[lvl], rtol=0, atol=0)
    # roi rule with finest_scale 16: sqrt(wh) 24.5 -> 0, 32 -> 1, 34 -> 1, 35.9 -> 1
    loss = FGFILoss(gt_levels='roi', finest_scale=16, adapter=None)
    masks = loss.masks(feats, gts(*boxes), retina, metas)
    for img, (img_boxes, lv) in enumerate(zip(boxes, [[0, 1, 1], [1]])):
        expected = loop_masks(priors, sizes, img_boxes, 0.5, lv)
        for lvl in range(5):
            torch.testing.assert_close(masks[lvl][img], expected[lvl], rtol=0, atol=0)


def test_imitation_masks_ignores_padded_boxes():
    # a padded slot sitting exactly on an anchor must not mark it
    priors = HandAnchors().grid_priors([(4, 4), (2, 2)])
    gt = t([[0, 0, 8, 8], [16, 16, 32, 32]]).view(1, 2, 4)
    masks = imitation_masks(priors, [(4, 4), (2, 2)], gt, torch.tensor([[True, False]]))
    assert masks[0].sum() == 1 and masks[1].sum() == 0


def test_distiller_trains_student_and_adapters(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(dict(
        type='Distiller', student=tiny_model_cfg('retina', 8),
        teacher=tiny_model_cfg('retina', 16), teacher_ckpt=ckpt,
        recorders=dict(fpn=dict(source='neck')),
        distill_losses=dict(loss_fgfi=dict(type='FGFILoss', loss_weight=0.01)),
        probe_size=64))
    MessageHub.get_current_instance().update_info('iter', 0)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 0],
                          num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    value = losses['distill.loss_fgfi']
    assert torch.isfinite(value) and value.item() > 0
    value.backward()
    assert all(p.grad is not None for p in d.distill_losses.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())


def test_errors(retina):
    with pytest.raises(ValueError, match='thr_factor'):
        FGFILoss(thr_factor=1.0)
    with pytest.raises(ValueError, match='gt_levels'):
        FGFILoss(gt_levels='one')
    with pytest.raises(ValueError, match='normalize'):
        FGFILoss(normalize='image')
    loss = build()
    kw = dict(gt_instances=GT, batch_img_metas=METAS)
    with pytest.raises(ValueError, match='prior_generator'):
        loss(features(), features(), student=SimpleNamespace(), **kw)
    with pytest.raises(ValueError, match='anchor generator has 5'):
        loss(features(), features(), student=retina, **kw)
    fcos = MODELS.build(tiny_model_cfg('fcos', 8))
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    feats = [torch.zeros(1, 2, h, w) for h, w in sizes]
    with pytest.raises(ValueError, match='anchor-free'):
        FGFILoss(adapter=None).masks(feats, GT[:1], fcos, [dict(batch_input_shape=(64, 64))])
    with pytest.raises(ValueError, match='stride'):
        loss(features(), features(), student=HAND_STUDENT, gt_instances=GT,
             batch_img_metas=[dict(batch_input_shape=(64, 64))] * 3)
    with pytest.raises(ValueError, match='gt_instances'):
        loss(features(), features(), student=HAND_STUDENT, gt_instances=GT[:2],
             batch_img_metas=METAS)


def test_visual_maps():
    maps = build().visual_maps(s_feats=features(), t_feats=features(), gt_instances=GT,
                               student=HAND_STUDENT, batch_img_metas=METAS)
    for actual, expected in zip(maps['imitation mask I'], EXPECTED_ALL):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
