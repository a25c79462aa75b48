"""IoU thresholds of a detector's assigner (mmkd_det.models.utils.assigner_thresholds).

ATSS thresholds are checked against mmdet's rule written as a loop here; the
other cases are worked out by hand in the comments.
"""
from types import SimpleNamespace

import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmkd_det.models.utils import DenseOutputs, assigner_thresholds, atss_thresholds


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def atss_loop(priors, level_num, gt, topk):
    """mmdet ATSSAssigner's threshold, one GT at a time."""
    out = torch.zeros(gt.shape[:2])
    for i in range(gt.shape[0]):
        for g in range(gt.shape[1]):
            box = gt[i, g]
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            ious, start = [], 0
            for n in level_num:
                lvl = priors[start:start + n]
                start += n
                pcx, pcy = (lvl[:, 0] + lvl[:, 2]) / 2, (lvl[:, 1] + lvl[:, 3]) / 2
                dist = ((pcx - cx) ** 2 + (pcy - cy) ** 2).sqrt()
                order = sorted(range(n), key=lambda j: float(dist[j]))[:topk]
                ious.append(bbox_overlaps(lvl[order], box[None])[:, 0])
            ious = torch.cat(ious)
            mean = ious.sum() / len(ious)
            std = (((ious - mean) ** 2).sum() / (len(ious) - 1)).sqrt()
            out[i, g] = mean + std
    return out


def random_boxes(n, g, size=64.0):
    ctr = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 2
    return torch.cat([ctr - wh / 2, ctr + wh / 2], 1)


@pytest.mark.parametrize('topk', [5, 9])
def test_atss_thresholds_match_loop(topk):
    g = torch.Generator().manual_seed(0)
    level_num = [20, 12]
    priors = random_boxes(sum(level_num), g)
    gt = random_boxes(6, g).view(2, 3, 4)
    expected = atss_loop(priors, level_num, gt, topk)
    assert_close(atss_thresholds(priors, level_num, gt, topk), expected)
    assert atss_thresholds(priors, level_num, gt[:, :0], topk).shape == (2, 0)


def head_with(assigner):
    return SimpleNamespace(train_cfg=dict(assigner=assigner))


# one level of two priors: [0,0,10,10] (IoU 1 with the GT) and [0,0,10,5] (IoU 0.5)
PRIORS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])
OUT = DenseOutputs(scores=torch.zeros(1, 2, 1), boxes=PRIORS[None], priors=PRIORS,
                   centers=torch.tensor([[5.0, 5.0], [5.0, 2.5]]), level_sizes=[2],
                   num_base_priors=1)
GT = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])


def test_fixed_and_max_iou_assigner():
    pos, neg = assigner_thresholds(None, OUT, GT, fixed=(0.6, 0.3))
    assert_close(pos, torch.tensor([[0.6]]))
    assert_close(neg, torch.tensor([[0.3]]))
    head = head_with(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4))
    pos, neg = assigner_thresholds(head, OUT, GT)
    assert_close(pos, torch.tensor([[0.5]]))
    assert_close(neg, torch.tensor([[0.4]]))
    # a (low, high) negative range: its upper bound
    head = head_with(dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=(0.0, 0.3)))
    pos, neg = assigner_thresholds(head, OUT, GT)
    assert_close(pos, torch.tensor([[0.7]]))
    assert_close(neg, torch.tensor([[0.3]]))


def test_atss_assigner_hand_case():
    # candidates: both priors (topk 9 > 2): IoUs 1 and 0.5, mean 0.75, unbiased std
    # sqrt((0.25^2 + 0.25^2) / 1) = 0.353553 -> pos 1.103553; neg 0.8 x pos = 0.882843
    head = head_with(dict(type='ATSSAssigner', topk=9))
    pos, neg = assigner_thresholds(head, OUT, GT)
    assert_close(pos, torch.tensor([[1.103553]]))
    assert_close(neg, torch.tensor([[0.882843]]))
    _, neg = assigner_thresholds(head, OUT, GT, atss_neg_ratio=1.0)
    assert_close(neg, torch.tensor([[1.103553]]))
    # topk 1: only the closest prior ([0,0,10,10], same centre): mean 1, std 0
    pos, _ = assigner_thresholds(head_with(dict(type='ATSSAssigner', topk=1)), OUT, GT)
    assert_close(pos, torch.tensor([[1.0]]))


def test_other_assigner_names_the_fix():
    head = head_with(dict(type='CenterRegionAssigner'))
    with pytest.raises(ValueError, match=r'iou_thrs=\(pos, neg\) on the LDLoss'):
        assigner_thresholds(head, OUT, GT, name='LDLoss')
    with pytest.raises(ValueError, match='TIDLoss'):
        assigner_thresholds(SimpleNamespace(), OUT, GT)
