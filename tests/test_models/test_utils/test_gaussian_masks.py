"""Gaussian GT masks: hand values and a per-cell loop reference."""
import math

import pytest
import torch

from mmkd_det.models.utils.gaussian_masks import gaussian_box_masks


def test_hand_values_one_box():
    # stride 4, 4x4 map, box [0, 0, 8, 16]: centre (4, 8), w 8, h 16, sigma (4, 8) at
    # rho 0.5. Cell (i, j) centre (4j + 2, 4i + 2). Columns 0, 1 (x 2, 6) are inside,
    # x - cx = -2, 2: factor exp(-4 / 32); rows 0..3 (y 2..14) inside, y - cy = -6, -2,
    # 2, 6: factor exp(-36 / 128) and exp(-4 / 128).
    boxes = torch.tensor([[[0., 0., 8., 16.]]])
    m = gaussian_box_masks(boxes, torch.tensor([[True]]), [(4, 4)], [4])[0]
    fx = math.exp(-4 / 32)
    fy = [math.exp(-36 / 128), math.exp(-4 / 128), math.exp(-4 / 128), math.exp(-36 / 128)]
    expected = torch.tensor([[fy[i] * fx, fy[i] * fx, 0, 0] for i in range(4)])
    assert torch.allclose(m[0], expected, atol=1e-6)
    # without clipping the outside columns get exp(-((4j + 2 - 4)^2) / 32) too
    m = gaussian_box_masks(boxes, torch.tensor([[True]]), [(4, 4)], [4], clip_to_box=False)[0]
    assert m[0, 1, 3].item() == pytest.approx(fy[1] * math.exp(-100 / 32))


def test_thin_box_keeps_its_centre_cell_and_padding_marks_nothing():
    # a 1 x 1 box inside cell (1, 2) of stride 8 (no cell centre inside it)
    boxes = torch.tensor([[[17., 9., 18., 10.], [0., 0., 32., 32.]]])
    valid = torch.tensor([[True, False]])
    m = gaussian_box_masks(boxes, valid, [(4, 4)], [8])[0][0]
    assert (m > 0).nonzero().tolist() == [[1, 2]]
    # centre (17.5, 9.5), cell centre (20, 12), sigma 0.5: exp(-6.25 / 0.5) twice
    assert m[1, 2].item() == pytest.approx(math.exp(-12.5) ** 2, rel=1e-4)


def test_against_loop_with_levels():
    torch.manual_seed(0)
    xy = torch.rand(2, 3, 2) * 48
    wh = torch.rand(2, 3, 2) * 30 + 2
    boxes = torch.cat([xy, xy + wh], -1)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    levels = torch.tensor([[0, 1, 0], [1, 1, 0]])
    sizes, strides = [(8, 8), (4, 4)], [8, 16]
    for lv in (None, levels):
        masks = gaussian_box_masks(boxes, valid, sizes, strides, 0.4, True, lv)
        for lvl, ((h, w), s) in enumerate(zip(sizes, strides)):
            for b in range(2):
                for i in range(h):
                    for j in range(w):
                        best = 0.0
                        for g in range(3):
                            if not valid[b, g] or (lv is not None and lv[b, g] != lvl):
                                continue
                            x1, y1, x2, y2 = boxes[b, g].tolist()
                            x, y = (j + 0.5) * s, (i + 0.5) * s
                            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                            inside = ((x1 <= x <= x2) or j == math.floor(cx / s)) and \
                                ((y1 <= y <= y2) or i == math.floor(cy / s))
                            if inside:
                                v = math.exp(-(x - cx)**2 / (2 * (0.4 * (x2 - x1))**2) -
                                             (y - cy)**2 / (2 * (0.4 * (y2 - y1))**2))
                                best = max(best, v)
                        assert masks[lvl][b, i, j].item() == pytest.approx(best, abs=1e-5)


def test_no_boxes_and_errors():
    m = gaussian_box_masks(torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool),
                           [(3, 5)], [8])
    assert m[0].shape == (2, 3, 5) and m[0].sum() == 0
    with pytest.raises(ValueError, match='sigma_ratio'):
        gaussian_box_masks(torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), [(2, 2)],
                           [8], sigma_ratio=0)
