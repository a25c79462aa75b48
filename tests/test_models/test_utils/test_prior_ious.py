"""Prior-GT IoU (mmkd_det.models.utils.prior_ious); IoUs worked out by hand."""
import torch

from mmkd_det.models.utils import prior_ious


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_shared_priors_and_padding():
    priors = t([0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30])
    # image 0: one GT and a padded slot; image 1: two GTs
    gt = t([[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 0, 10, 5], [20, 20, 30, 30]])
    valid = torch.tensor([[True, False], [True, True]])
    # image 0, GT [0,0,10,10]: prior 0 -> 1; prior 1 overlap 5x10 = 50 over 150 -> 1/3
    # image 1, GT [0,0,10,5]: prior 0 50 / 100 = 0.5; prior 1 overlap 5x5 = 25 over
    #   100 + 50 - 25 = 125 -> 0.2; GT [20,20,30,30]: prior 2 -> 1
    expected = torch.stack([t([1.0, -1.0], [1 / 3, -1.0], [0.0, -1.0]),
                            t([0.5, 0.0], [0.2, 0.0], [0.0, 1.0])])
    assert_close(prior_ious(priors, gt, valid), expected)
    # per-image boxes (B, P, 4) give the same; without valid the padded slot is a real box
    assert_close(prior_ious(priors[None].expand(2, -1, -1), gt, valid), expected)
    assert_close(prior_ious(priors, gt)[0, :, 1], t(0.0, 0.0, 0.0))
    assert prior_ious(priors, gt[:, :0], valid[:, :0]).shape == (2, 3, 0)


def test_legacy_offset():
    # +1 on widths, heights and overlap sides (faster-rcnn.pytorch's bbox_overlaps_batch)
    priors = t([0, 0, 8, 4], [2, 2, 6, 6], [4, 0, 8, 4])
    gt = t([[0, 0, 4, 4]])
    # mmdet: 16 / 32 = 0.5; overlap 2x2 = 4 over 28 = 0.142857; touching: 0
    assert_close(prior_ious(priors, gt)[0, :, 0], t(0.5, 4 / 28, 0.0))
    # legacy: areas 5x5 = 25, 9x5 = 45, 5x5, 5x5; overlaps 5x5 = 25 -> 25 / 45;
    # 3x3 = 9 -> 9 / 41; touching at x = 4: 1x5 = 5 -> 5 / 45
    assert_close(prior_ious(priors, gt, legacy_offset=True)[0, :, 0],
                 t(25 / 45, 9 / 41, 5 / 45))
