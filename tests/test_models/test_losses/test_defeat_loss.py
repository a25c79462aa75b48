"""DeFeat decoupled FPN loss (Guo et al., CVPR 2021; authors' neck-decouple code).

Level rule, masks and loss values are worked out by hand in the comments.
"""
import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses.defeat_loss import DeFeatLoss
from mmkd_det.models.utils import gt_box_masks
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def gts(*boxes_per_image):
    return [InstanceData(bboxes=torch.tensor(b, dtype=torch.float32).view(-1, 4),
                         labels=torch.zeros(len(b), dtype=torch.long))
            for b in boxes_per_image]


def assert_equal(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


# ------------------------------------------------------------------ masks
# 32 x 32 input, level 0: 4 x 4 cells of stride 8, level 1: 2 x 2 cells of stride 16.
SIZES, STRIDES = [(4, 4), (2, 2)], [8, 16]
IMG0 = [[0, 0, 16, 16],     # A: cells rows [0, 2) x cols [0, 2)
        [20, 4, 32, 12],    # B: x 2.5..4 -> cols [2, 4) (right border), y 0.5..1.5 -> row 0
        [9, 17, 14, 22],    # C: x 1.1..1.75 -> int 1 == 1: thinner than a cell -> only (2, 1)
        [8, 8, 24, 24],     # D: rows [1, 3) x cols [1, 3), overlaps A
        [0, 0, 32, 32]]     # E: level 1, every cell
IMG1 = [[30, 30, 32, 32],   # F: x 3.75..4 -> col 3, row 3 (bottom-right corner)
        [28, 0, 31, 6],     # G: x 3.5..3.9 -> int 3 == 3: degenerate at the border -> (0, 3)
        [20, 20, 30, 30]]   # H: on level 1: 1.25..1.9 -> degenerate -> level-1 cell (1, 1)


def padded(*images):
    num = max(len(b) for b in images)
    boxes = torch.zeros(len(images), num, 4)
    valid = torch.zeros(len(images), num, dtype=torch.bool)
    for i, b in enumerate(images):
        boxes[i, :len(b)] = t(*b) if b else boxes[i, :0]
        valid[i, :len(b)] = True
    return boxes, valid


def test_gt_box_masks_hand_boxes():
    boxes, valid = padded(IMG0, IMG1, [])
    levels = torch.tensor([[0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    lvl0, lvl1 = gt_box_masks(boxes, valid, levels, SIZES, STRIDES)
    assert_equal(lvl0[0], t([1, 1, 1, 1],     # A, A, B, B
                            [1, 1, 1, 0],     # A, A+D, D
                            [0, 1, 1, 0],     # C+D, D
                            [0, 0, 0, 0]))
    assert_equal(lvl0[1], t([0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]))
    assert_equal(lvl0[2], torch.zeros(4, 4))  # no GT (padding rows never set anything)
    assert_equal(lvl1, t([[1, 1], [1, 1]], [[0, 0], [0, 1]], [[0, 0], [0, 0]]))


def test_gt_box_masks_box_only_on_its_level():
    boxes, valid = padded([[0, 0, 32, 32]])
    lvl0, lvl1 = gt_box_masks(boxes, valid, torch.tensor([[1]]), SIZES, STRIDES)
    assert lvl0.sum() == 0 and lvl1.sum() == 4


# ------------------------------------------------------------------- loss
# finest_scale 16: sqrt(wh) A 16, D 16 -> log2(1) = 0; E 32 -> 1; B 9.8, C 5, F 2, G 4.2,
# H 10 -> 0. So H is now on level 0: x, y 2.5..3.75 -> cell (2, 2).
GT = gts(IMG0, IMG1, [])
METAS = [dict(batch_input_shape=(32, 32))] * 3
LVL0 = [t([1, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]),
        t([0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]),
        torch.zeros(4, 4)]
LVL1 = t([[1, 1], [1, 1]], [[0, 0], [0, 0]], [[0, 0], [0, 0]])


def build(feats, **cfg):
    cfg.setdefault('adapter', None)
    loss = MODELS.build(dict(type='DeFeatLoss', finest_scale=16, **cfg))
    loss.setup(dict(s_feats=[f.shape for f in feats], t_feats=[f.shape for f in feats]), 'x')
    return loss


def student_features():
    # channel 0 of level 0 is row index + 1 (1..4), channel 1 is 0: with a zero teacher
    # the squared difference per location is (row + 1)^2; level 1: 3 and 0 -> 9.
    lvl0 = torch.zeros(3, 2, 4, 4)
    lvl0[:, 0] = torch.arange(1.0, 5.0)[:, None]
    lvl1 = torch.zeros(3, 2, 2, 2)
    lvl1[:, 0] = 3.0
    return [lvl0, lvl1]


def zeros():
    return [torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 2, 2)]


def test_masks_from_gt_instances():
    lvl0, lvl1 = build(zeros()).masks(zeros(), GT, STRIDES, METAS)
    for img in range(3):
        assert_equal(lvl0[img], LVL0[img])
    assert_equal(lvl1, LVL1)


def test_level_legacy_offset_moves_a_box_one_level_up():
    # finest_scale 16: [0,0,31,31] has sqrt(wh) 31 -> log2(1.94) = 0.95 -> level 0, cells
    # [0, 3) x [0, 3) (31 / 8 = 3.9 truncates to 3); with the authors' +1, 32 -> log2(2) = 1
    # -> level 1, cells [0, 1) x [0, 1) (31 / 16 = 1.9 truncates to 1)
    gt = gts([[0, 0, 31, 31]], [], [])
    lvl0, lvl1 = build(zeros()).masks(zeros(), gt, STRIDES, METAS)
    assert lvl0[0, :3, :3].sum() == 9 and lvl0.sum() == 9 and lvl1.sum() == 0
    lvl0, lvl1 = build(zeros(), level_legacy_offset=True).masks(zeros(), gt, STRIDES, METAS)
    assert lvl1[0, 0, 0] == 1 and lvl1.sum() == 1 and lvl0.sum() == 0


def test_loss_value_and_normalisers():
    # level 0: fg cells: image 0 rows 0/1/2 have 4/3/2 cells -> 4x1 + 3x4 + 2x9 = 34;
    #   image 1 (0,3), (2,2), (3,3) -> 1 + 9 + 16 = 26. fg sum 60 over 12 cells:
    #   60 / (2 x C=2 x 12) = 1.25. All cells: 3 images x 4 x (1 + 4 + 9 + 16) = 360,
    #   bg 300 over 36 cells: 300 / (2 x 2 x 36) = 2.0833.
    # level 1: fg = 4 cells x 9 / (2 x 2 x 4) = 2.25; bg = 8 x 9 / (2 x 2 x 8) = 2.25.
    # mean over levels: fg 1.75, bg 2.16667; x 3 and x 12.
    s = student_features()
    kw = dict(gt_instances=GT, strides=STRIDES, batch_img_metas=METAS)
    out = build(s)(s, zeros(), **kw)
    assert set(out) == {'loss_fg', 'loss_bg'}
    assert out['loss_fg'].item() == pytest.approx(3 * 1.75)
    assert out['loss_bg'].item() == pytest.approx(12 * (2.0 + 1 / 12 + 2.25) / 2)
    out = build(s, level_reduction='sum', loss_weight=0.5, fg_weight=1, bg_weight=2)(
        s, zeros(), **kw)
    assert out['loss_fg'].item() == pytest.approx(0.5 * 1 * 3.5)
    assert out['loss_bg'].item() == pytest.approx(0.5 * 2 * (2.0 + 1 / 12 + 2.25))


def test_batch_without_gt():
    # fg: 0 / max(1, 0) = 0; bg: level 0 360 / (2 x 2 x 48) = 1.875, level 1
    # 12 x 9 / (2 x 2 x 12) = 2.25; mean 2.0625 x 12
    s = student_features()
    out = build(s)(s, zeros(), gt_instances=gts([], [], []), strides=STRIDES,
                   batch_img_metas=METAS)
    assert out['loss_fg'].item() == 0.0
    assert out['loss_bg'].item() == pytest.approx(12 * 2.0625)


def test_gradients_reach_student_and_adapter_not_teacher():
    s = [f.clone().requires_grad_() for f in student_features()]
    t_feats = [torch.randn_like(f).requires_grad_() for f in s]
    loss = build(s, adapter='default')
    out = loss(s, t_feats, gt_instances=GT, strides=STRIDES, batch_img_metas=METAS)
    (out['loss_fg'] + out['loss_bg']).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t_feats)
    assert all(p.grad is not None for p in loss.adapters.parameters())


def test_default_adapter_3x3_with_authors_init():
    f = zeros()
    loss = build(f, adapter='default')
    convs = loss.adapters['s_feats'].convs
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert w.abs().max() <= 2e-4 and w.std() > 2e-5
    plain = build(f, adapter='default', adapter_init_std=None)
    assert plain.adapters['s_feats'].convs[0].weight.abs().max() > 1e-2


def test_distiller_faster_rcnn_uses_rpn_strides(weights):
    ckpt = weights(tiny_model_cfg('faster', 16))
    d = MODELS.build(dict(
        type='Distiller', student=tiny_model_cfg('faster', 8),
        teacher=tiny_model_cfg('faster', 16), teacher_ckpt=ckpt,
        recorders=dict(fpn=dict(source='neck')),
        distill_losses=dict(loss_defeat=dict(type='DeFeatLoss')), probe_size=64))
    MessageHub.get_current_instance().update_info('iter', 0)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 0],
                          num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    fg, bg = losses['distill.loss_defeat.loss_fg'], losses['distill.loss_defeat.loss_bg']
    assert torch.isfinite(fg) and torch.isfinite(bg) and bg.item() > 0
    (fg + bg).backward()
    assert all(p.grad is not None for p in d.distill_losses.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())


def test_errors():
    f = zeros()
    kw = dict(gt_instances=GT, batch_img_metas=METAS)
    with pytest.raises(ValueError, match='level_reduction'):
        DeFeatLoss(level_reduction='max')
    with pytest.raises(ValueError, match='finest_scale'):
        DeFeatLoss(finest_scale=0)
    with pytest.raises(ValueError, match='level_offset'):
        DeFeatLoss(level_offset=0.5)
    loss = build(f)
    with pytest.raises(ValueError, match='strides'):
        loss(f, f, strides=None, **kw)
    with pytest.raises(ValueError, match='2 recorded feature levels but 5 strides'):
        loss(f, f, strides=[8, 16, 32, 64, 128], **kw)
    with pytest.raises(ValueError, match='level 0 is 4x4'):
        loss(f, f, strides=[4, 8], **kw)
    with pytest.raises(ValueError, match='gt_instances'):
        loss(f, f, strides=STRIDES, gt_instances=GT[:1], batch_img_metas=METAS)
    # strides given on the loss override the Distiller's
    fixed = build(f, strides=STRIDES)
    assert set(fixed(f, f, strides=None, **kw)) == {'loss_fg', 'loss_bg'}


def test_visual_maps():
    maps = build(zeros()).visual_maps(s_feats=zeros(), t_feats=zeros(), gt_instances=GT,
                                      strides=STRIDES, batch_img_metas=METAS)
    lvl0, lvl1 = maps['object mask M (GT, one level per box)']
    assert_equal(lvl0, torch.stack(LVL0))
    assert_equal(lvl1, LVL1)
