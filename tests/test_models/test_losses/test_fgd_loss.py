"""FGD (Yang et al., CVPR 2022): focal masks and attention (focal distillation),
GcBlock relation loss (global distillation), the four weighted terms.

Masks are written out by hand (comments give the cell arithmetic) and also
rebuilt per box and per pixel by a loop here; attention, the four terms and the
GcBlock are recomputed with explicit loops / plain tensor ops written in this
file, never with the functions under test.
"""
import math

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.models.losses.fgd_loss import PRESETS, FGDLoss, fgd_attention, fgd_masks
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def gts(*boxes_per_image):
    return [InstanceData(bboxes=torch.tensor(b, dtype=torch.float32).view(-1, 4),
                         labels=torch.zeros(len(b), dtype=torch.long))
            for b in boxes_per_image]


def assert_close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


Q, X = 1 / 4, 1 / 12
# 32 x 32 batch input, a 4 x 4 level: one cell is 8 px.
# image 0: A [0,0,8,8] -> cells 0..1 x 0..1 (inclusive window: floor(0)..ceil(1)), 1/(2x2);
#          B [4,4,12,20] -> x 0.5..1.5 -> cols 0..2, y 0.5..2.5 -> rows 0..3, 1/(4x3);
#            overlaps A: the max (A's 1/4) wins;
#          C [24,24,32,32] -> x, y 3..4 -> window 3..4, clipped to cell (3, 3); its value
#            counts the unclipped 2 x 2 window: 1/4.
# image 1: no GT. image 2: [0,0,32,32] -> window 0..4 (5 x 5), clipped: 1/25 everywhere.
BOXES = ([[0, 0, 8, 8], [4, 4, 12, 20], [24, 24, 32, 32]], [], [[0, 0, 32, 32]])
FG = [t([Q, Q, X, 0], [Q, Q, X, 0], [X, X, X, 0], [X, X, X, Q]),
      torch.zeros(4, 4),
      torch.full((4, 4), 1 / 25)]
BG = [t([0, 0, 0, 1 / 3], [0, 0, 0, 1 / 3], [0, 0, 0, 1 / 3], [0, 0, 0, 0]),
      torch.full((4, 4), 1 / 16),
      torch.zeros(4, 4)]          # all foreground: nothing to normalise, left 0
METAS = [dict(batch_input_shape=(32, 32), img_shape=(32, 32))] * 3


def padded(boxes_per_image):
    num = max(len(b) for b in boxes_per_image)
    boxes = torch.zeros(len(boxes_per_image), num, 4)
    valid = torch.zeros(len(boxes_per_image), num, dtype=torch.bool)
    for i, b in enumerate(boxes_per_image):
        if b:
            boxes[i, :len(b)] = torch.tensor(b, dtype=torch.float32)
            valid[i, :len(b)] = True
    return boxes, valid


def loop_masks(boxes, size, frame_hw):
    """Per box, per pixel: the authors' window rule on one image."""
    h, w = size
    fg = torch.zeros(h, w)
    for x1, y1, x2, y2 in boxes:
        x1, x2 = x1 * w / frame_hw[1], x2 * w / frame_hw[1]
        y1, y2 = y1 * h / frame_hw[0], y2 * h / frame_hw[0]
        c0, c1, r0, r1 = math.floor(x1), math.ceil(x2), math.floor(y1), math.ceil(y2)
        value = 1.0 / ((r1 + 1 - r0) * (c1 + 1 - c0))
        for r in range(h):
            for c in range(w):
                if r0 <= r <= r1 and c0 <= c <= c1:
                    fg[r, c] = max(fg[r, c].item(), value)
    bg = (fg == 0).float()
    if bg.sum() > 0:
        bg = bg / bg.sum()
    return fg, bg


# ------------------------------------------------------------------ masks
def test_masks_hand_boxes():
    boxes, valid = padded(BOXES)
    fg, bg = fgd_masks(boxes, valid, (4, 4), torch.tensor([[32.0, 32.0]] * 3))
    for img in range(3):
        assert_close(fg[img], FG[img])
        assert_close(bg[img], BG[img])
        # and the per-pixel loop agrees with the hand values
        lf, lb = loop_masks(BOXES[img], (4, 4), (32, 32))
        assert_close(lf, FG[img])
        assert_close(lb, BG[img])


def test_masks_match_loop_on_non_square_levels():
    # 40 x 56 batch, levels 5 x 7 and 3 x 4 (ceil), boxes with fractional cells
    frame = (40.0, 56.0)
    images = ([[3.0, 5.0, 17.0, 11.0], [0.0, 0.0, 56.0, 12.5], [30.2, 20.7, 55.9, 40.0]],
              [[10.0, 2.0, 12.0, 39.0]])
    boxes, valid = padded(images)
    for size in ((5, 7), (3, 4)):
        fg, bg = fgd_masks(boxes, valid, size, torch.tensor([frame] * 2))
        for img, b in enumerate(images):
            lf, lb = loop_masks(b, size, frame)
            assert_close(fg[img], lf)
            assert_close(bg[img], lb)


def test_box_scale_img_shape_reproduces_the_original_stretch():
    # image 0 is 16 px high inside a 32 px batch: scaling by img_shape maps y by 4/16,
    # so A [0,0,8,8] covers rows 0..2 (y 0..2) and cols 0..1: 1/(3 x 2)
    metas = [dict(batch_input_shape=(32, 32), img_shape=(16, 32))]
    feats = [torch.zeros(1, 2, 4, 4)]
    gt = gts([[0, 0, 8, 8]])
    fg, _ = FGDLoss(box_scale='img_shape').masks(feats, gt, metas)
    s = 1 / 6
    assert_close(fg[0][0], t([s, s, 0, 0], [s, s, 0, 0], [s, s, 0, 0], [0, 0, 0, 0]))
    fg, _ = FGDLoss().masks(feats, gt, metas)
    assert_close(fg[0][0], t([Q, Q, 0, 0], [Q, Q, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]))
    assert_close(fg[0][0], loop_masks([[0, 0, 8, 8]], (4, 4), (32, 32))[0])


# -------------------------------------------------------------- attention
def test_attention_hand_values():
    # one image, C = 2, 1 x 2 pixels: pixel 0 = (1, -3), pixel 1 = (0, 1)
    f = t([[1.0, 0.0]], [[-3.0, 1.0]]).view(1, 2, 1, 2)
    sp, ch = fgd_attention(f, 0.5)
    # spatial: mean_c |F| = (2, 0.5) -> /0.5 = (4, 1); HW = 2
    e4, e1 = math.exp(4), math.exp(1)
    assert_close(sp, t([[2 * e4 / (e4 + e1), 2 * e1 / (e4 + e1)]]))
    # channel: mean_hw |F| = (0.5, 2) -> (1, 4); C = 2
    assert_close(ch, t([2 * e1 / (e4 + e1), 2 * e4 / (e4 + e1)]))


def ref_attention(f, temp):
    n, c, h, w = f.shape
    sp, ch = torch.zeros(n, h, w), torch.zeros(n, c)
    for i in range(n):
        g = [[sum(abs(f[i, k, y, x].item()) for k in range(c)) / c for x in range(w)]
             for y in range(h)]
        z = sum(math.exp(v / temp) for row in g for v in row)
        for y in range(h):
            for x in range(w):
                sp[i, y, x] = h * w * math.exp(g[y][x] / temp) / z
        gc = [sum(abs(f[i, k, y, x].item()) for y in range(h) for x in range(w)) / (h * w)
              for k in range(c)]
        z = sum(math.exp(v / temp) for v in gc)
        for k in range(c):
            ch[i, k] = c * math.exp(gc[k] / temp) / z
    return sp, ch


def ref_gcblock(x, block):
    """R(F) = F + W_v2 ReLU(LN(W_v1 sum_j softmax_j(W_k F) F_j)), plain tensor ops."""
    n, c, h, w = x.shape
    wk, bk = block.conv_mask.weight.view(c), block.conv_mask.bias
    logits = (x * wk.view(1, c, 1, 1)).sum(1).view(n, -1) + bk
    p = torch.exp(logits - logits.max(1, keepdim=True).values)
    p = p / p.sum(1, keepdim=True)                                        # (n, hw)
    context = (x.view(n, c, -1) * p[:, None]).sum(-1)                     # (n, c)
    conv1, ln, _, conv2 = block.channel_add_conv
    y = context @ conv1.weight.view(conv1.out_channels, c).T + conv1.bias
    mu = y.mean(1, keepdim=True)
    var = ((y - mu) ** 2).mean(1, keepdim=True)
    y = (y - mu) / torch.sqrt(var + ln.eps) * ln.weight.view(1, -1) + ln.bias.view(1, -1)
    y = y.clamp(min=0)
    z = y @ conv2.weight.view(c, -1).T + conv2.bias
    return x + z[:, :, None, None]


def reference_terms(s_feats, t_feats, fgs, bgs, loss, temp):
    """Per-pixel loops for L_fg, L_bg, L_at; plain ops for L_rel; summed over levels."""
    out = dict(fg=0.0, bg=0.0, at=0.0, rel=0.0)
    for lvl, (s, tt, fg, bg) in enumerate(zip(s_feats, t_feats, fgs, bgs)):
        s, tt = s.detach(), tt.detach()
        n, c, h, w = s.shape
        sp_t, ch_t = ref_attention(tt, temp)
        sp_s, ch_s = ref_attention(s, temp)
        for i in range(n):
            for k in range(c):
                for y in range(h):
                    for x in range(w):
                        d2 = (s[i, k, y, x] - tt[i, k, y, x]).item() ** 2
                        a = sp_t[i, y, x].item() * ch_t[i, k].item()
                        out['fg'] += fg[i][y, x].item() * a * d2 / n
                        out['bg'] += bg[i][y, x].item() * a * d2 / n
        out['at'] += ((ch_s - ch_t).abs().sum() + (sp_s - sp_t).abs().sum()).item() / n
        with torch.no_grad():
            rel = ref_gcblock(s, loss.gc_student[lvl]) - ref_gcblock(tt, loss.gc_teacher[lvl])
        out['rel'] += (rel ** 2).sum().item() / n
    return out


def randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def level_features(seed, channels=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, channels, 4, 4, generator=g), torch.randn(3, channels, 2, 2,
                                                                     generator=g)]


def build(s_feats, t_feats, **cfg):
    loss = MODELS.build(dict(type='FGDLoss', **cfg))
    loss.setup(dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats]),
               'fgd')
    return loss


# level 1 (2 x 2 cells of 16 px): A -> window 0..1 (x, y 0..0.5): 1/4 on rows/cols 0..1;
# B [4,4,12,20] -> x 0.25..0.75 -> cols 0..1, y 0.25..1.25 -> rows 0..2 (clipped): 1/6,
# smaller than A's 1/4 on A's window; C [24,24,32,32] -> 1.5..2 -> window 1..2: 1/4
FG1 = [t([Q, Q], [Q, Q]), torch.zeros(2, 2), torch.full((2, 2), 1 / 9)]
BG1 = [torch.zeros(2, 2), torch.full((2, 2), 1 / 4), torch.zeros(2, 2)]


def test_level1_hand_masks():
    boxes, valid = padded(BOXES)
    fg, bg = fgd_masks(boxes, valid, (2, 2), torch.tensor([[32.0, 32.0]] * 3))
    for img in range(3):
        assert_close(fg[img], FG1[img])
        assert_close(bg[img], BG1[img])


def test_four_terms_match_loops_and_initial_relation_is_mse():
    s, tt = level_features(0), level_features(1)
    loss = build(s, tt, alpha_fgd=2.0, beta_fgd=3.0, gamma_fgd=5.0, lambda_fgd=7.0,
                 temperature=0.5, loss_weight=0.1)
    out = loss(s, tt, gt_instances=gts(*BOXES), batch_img_metas=METAS)
    assert set(out) == {'loss_fg', 'loss_bg', 'loss_at', 'loss_rel'}
    ref = reference_terms(s, tt, [FG, FG1], [BG, BG1], loss, 0.5)
    # the zero-initialised last conv: L_rel = ||S - T||^2 / N at init
    mse = sum(((a - b) ** 2).sum().item() for a, b in zip(s, tt)) / 3
    assert ref['rel'] == pytest.approx(mse, rel=1e-5)
    for key, weight in (('fg', 2.0), ('bg', 3.0), ('at', 5.0), ('rel', 7.0)):
        assert out[f'loss_{key}'].item() == pytest.approx(0.1 * weight * ref[key], rel=1e-4)


def test_relation_term_with_trained_gcblocks():
    s, tt = level_features(2), level_features(3)
    loss = build(s, tt, lambda_fgd=1.0)
    randomise(loss.gc_student, 0)
    randomise(loss.gc_teacher, 1)
    out = loss(s, tt, gt_instances=gts(*BOXES), batch_img_metas=METAS)
    ref = reference_terms(s, tt, [FG, FG1], [BG, BG1], loss, 0.5)
    mse = sum(((a - b) ** 2).sum().item() for a, b in zip(s, tt)) / 3
    assert out['loss_rel'].item() == pytest.approx(ref['rel'], rel=1e-4)
    assert abs(ref['rel'] - mse) > 1e-3 * mse          # the blocks now change it


def test_gcblock_init_and_gradients():
    s = [f.requires_grad_() for f in level_features(4, channels=2)]
    tt = [f.requires_grad_() for f in level_features(5, channels=4)]
    loss = build(s, tt)                      # 2 -> 4 channels: 'auto' 1x1 adapter
    assert loss.adapters['s_feats'].convs[0].kernel_size == (1, 1)
    for block in list(loss.gc_student) + list(loss.gc_teacher):
        assert block.planes == 2              # C / 2 on the teacher's channels
        assert block.channel_add_conv[-1].weight.abs().sum() == 0
        assert block.channel_add_conv[-1].bias.abs().sum() == 0
        assert block.conv_mask.bias.abs().sum() == 0
        assert block.conv_mask.weight.abs().sum() > 0
    randomise(loss.gc_student, 6)
    randomise(loss.gc_teacher, 7)
    out = loss(s, tt, gt_instances=gts(*BOXES), batch_img_metas=METAS)
    sum(out.values()).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in tt)
    for module in (loss.adapters, loss.gc_student, loss.gc_teacher):
        assert all(p.grad is not None for p in module.parameters())
    # L_at alone trains the student towards the teacher's attention (not detached)
    s2 = [f.detach().requires_grad_() for f in s]
    loss(s2, tt, gt_instances=gts(*BOXES), batch_img_metas=METAS)['loss_at'].backward()
    assert all(f.grad.abs().sum() > 0 for f in s2)


def test_presets_and_defaults():
    loss = FGDLoss()
    assert (loss.temperature, loss.alpha_fgd, loss.beta_fgd, loss.gamma_fgd,
            loss.lambda_fgd) == (0.5, 1e-3, 5e-4, 5e-4, 5e-6)
    assert loss.box_scale == 'batch_input_shape'
    fcos = FGDLoss(preset='fcos', alpha_fgd=1.0)
    assert (fcos.temperature, fcos.alpha_fgd, fcos.lambda_fgd) == (0.8, 1.0, 8e-6)
    assert FGDLoss(preset='faster_rcnn').beta_fgd == 2.5e-5
    assert set(PRESETS) == {'retinanet', 'gfl', 'fcos', 'faster_rcnn'}


def test_no_relation_weight_builds_no_gcblocks():
    s, tt = level_features(8), level_features(9)
    loss = build(s, tt, lambda_fgd=0.0)
    assert len(loss.gc_student) == 0 and len(list(loss.parameters())) == 0
    out = loss(s, tt, gt_instances=gts(*BOXES), batch_img_metas=METAS)
    assert out['loss_rel'].item() == 0.0 and out['loss_fg'].item() > 0


def test_distiller_trains_student_adapters_and_gcblocks(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(dict(
        type='Distiller', student=tiny_model_cfg('retina', 8),
        teacher=tiny_model_cfg('retina', 16), teacher_ckpt=ckpt,
        recorders=dict(fpn=dict(source='neck')),
        distill_losses=dict(loss_fgd=dict(type='FGDLoss')), probe_size=64))
    d.init_weights()                 # the runner does this; GcBlock init must survive it
    fgd = d.distill_losses['loss_fgd']
    assert all(b.channel_add_conv[-1].weight.abs().sum() == 0 for b in fgd.gc_student)
    MessageHub.get_current_instance().update_info('iter', 0)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 0],
                          num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    keys = [f'distill.loss_fgd.loss_{k}' for k in ('fg', 'bg', 'at', 'rel')]
    assert all(torch.isfinite(losses[k]) for k in keys)
    sum(losses[k] for k in keys).backward()
    assert all(p.grad is not None for p in fgd.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())


def test_errors():
    s, tt = level_features(10), level_features(11)
    with pytest.raises(ValueError, match='preset'):
        FGDLoss(preset='yolox')
    with pytest.raises(ValueError, match='box_scale'):
        FGDLoss(box_scale='pad_shape')
    with pytest.raises(ValueError, match='temperature'):
        FGDLoss(temperature=0)
    with pytest.raises(ValueError, match='beta_fgd'):
        FGDLoss(beta_fgd=-1.0)
    loss = build(s, tt)
    gt = gts(*BOXES)
    with pytest.raises(ValueError, match='batch_img_metas'):
        loss(s, tt, gt_instances=gt, batch_img_metas=METAS[:2])
    with pytest.raises(ValueError, match="no 'img_shape'"):
        build(s, tt, box_scale='img_shape')(s, tt, gt_instances=gt,
                                            batch_img_metas=[dict(batch_input_shape=(32, 32))] * 3)
    with pytest.raises(ValueError, match='gt_instances'):
        loss(s, tt, gt_instances=gt[:1], batch_img_metas=METAS)
    with pytest.raises(ValueError, match='levels'):
        loss(s[:1], tt, gt_instances=gt, batch_img_metas=METAS)
    with pytest.raises(RuntimeError, match='setup'):
        FGDLoss()(s, tt, gt_instances=gt, batch_img_metas=METAS)


def test_visual_maps():
    s, tt = level_features(12), level_features(13)
    maps = build(s, tt).visual_maps(s_feats=s, t_feats=tt, gt_instances=gts(*BOXES),
                                    batch_img_metas=METAS)
    fg, bg = maps['foreground scale mask'], maps['background mask']
    for img in range(3):
        assert_close(fg[0][img], FG[img])
        assert_close(bg[1][img], BG1[img])
    att = maps['teacher spatial attention A^S(T)']
    assert [a.shape for a in att] == [(3, 4, 4), (3, 2, 2)]
    assert_close(att[1], ref_attention(tt[1], 0.5)[0])
