"""GT box masks (mmkd_det.models.utils.gt_box_masks); cells worked out by hand.

DeFeat's own cases (borders, overlaps, a batch) are in test_defeat_loss.py.
"""
import torch

from mmkd_det.models.utils import gt_box_masks


def test_one_level_per_box_windows_and_thin_boxes():
    # 8x8 input: level 0 is 2x2 cells of stride 4, level 1 one cell of stride 8
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 4.0],     # level 0: cols [0, 2), rows [0, 1)
                           [5.0, 5.0, 7.0, 7.0],     # level 0: 1.25..1.75 -> thin: cell (1, 1)
                           [0.0, 0.0, 8.0, 8.0],     # level 1: the cell (0, 0)
                           [0.0, 0.0, 8.0, 8.0]]])   # padding: nothing
    valid = torch.tensor([[True, True, True, False]])
    levels = torch.tensor([[0, 0, 1, 0]])
    lvl0, lvl1 = gt_box_masks(boxes, valid, levels, [(2, 2), (1, 1)], [4, 8])
    torch.testing.assert_close(lvl0, torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]), rtol=0, atol=0)
    torch.testing.assert_close(lvl1, torch.tensor([[[1.0]]]), rtol=0, atol=0)
    # the same boxes all on level 1: one cell, set once (union, not a count)
    lvl0, lvl1 = gt_box_masks(boxes, valid, torch.ones_like(levels), [(2, 2), (1, 1)], [4, 8])
    assert lvl0.sum() == 0 and lvl1.tolist() == [[[1.0]]]
