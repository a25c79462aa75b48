"""Batched positive assignment (max_iou_assign) and anchor flags (anchor_valid_flags).

Hand cases with the IoUs written out; then random batches against mmdet's own
MaxIoUAssigner and AnchorHead flags, image by image (an independent implementation).
"""
import pytest
import torch
from mmdet.models.task_modules.assigners import MaxIoUAssigner
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmengine.structures import InstanceData

from mmkd_det.models.utils import anchor_valid_flags, max_iou_assign, prior_ious
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def assert_equal(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=0)


def test_step_one_argmax_over_eligible_gts():
    # one image, 4 priors, 2 GTs; IoU rows = priors
    iou = t([0.9, 0.8], [0.3, 0.6], [0.45, 0.2], [0.0, 0.0])[None]
    pos = t([0.5, 0.5])
    # prior 0: both eligible, GT 0 higher; prior 1: GT 1; prior 2: 0.45 < 0.5; prior 3: none
    assert_equal(max_iou_assign(iou, pos), [[0, 1, -1, -1]])
    # per-GT thresholds: GT 0 needs 0.95, so prior 0 goes to GT 1 (0.8 >= 0.5)
    assert_equal(max_iou_assign(iou, t([0.95, 0.5])), [[1, 1, -1, -1]])
    # ties go to the first GT
    assert_equal(max_iou_assign(t([0.7, 0.7])[None], pos), [[0]])


def test_low_quality_matches_overwrite_and_last_gt_wins():
    iou = t([0.9, 0.3], [0.3, 0.3], [0.2, 0.1])[None]
    pos = t([0.5, 0.5])
    # GT 1 reaches no threshold; its best IoU 0.3 is at priors 0 and 1 (tie): with
    # min_pos_iou 0.25 both become GT 1's, prior 0 overwriting its step-1 GT 0
    assert_equal(max_iou_assign(iou, pos, min_pos_iou=0.25), [[1, 1, -1]])
    # only the first tied prior when not gt_max_assign_all
    assert_equal(max_iou_assign(iou, pos, min_pos_iou=0.25, gt_max_assign_all=False),
                 [[1, -1, -1]])
    # above min_pos_iou only GT 0 (0.9): its best prior is already its own
    assert_equal(max_iou_assign(iou, pos, min_pos_iou=0.35), [[0, -1, -1]])
    # GT 0 also has its maximum 0.9 at prior 0 only; GT 1 (later) wins prior 0
    assert_equal(max_iou_assign(iou, pos, min_pos_iou=0.0), [[1, 1, -1]])


def test_padding_and_prior_flags():
    iou = t([0.9, 0.95], [0.6, 0.0])[None]
    pos = t([0.5, 0.5])
    valid = torch.tensor([[True, False]])
    # the padded slot 1 never wins, even with the higher IoU
    assert_equal(max_iou_assign(iou, pos, valid, min_pos_iou=0.0), [[0, 0]])
    # prior 0 switched off: not assigned, and GT 0's best prior is now prior 1 (0.6)
    prior_valid = torch.tensor([[False, True]])
    assert_equal(max_iou_assign(iou, pos, valid, prior_valid, min_pos_iou=0.0), [[-1, 0]])
    assert_equal(max_iou_assign(iou[:, :, :0], pos[:0]), [[-1, -1]])


@pytest.mark.parametrize('min_pos_iou,assign_all', [(0.0, True), (0.3, False), (None, True)])
def test_matches_mmdet_max_iou_assigner(min_pos_iou, assign_all):
    g = torch.Generator().manual_seed(0)
    batch, num_priors, num_gt = 3, 60, 5
    xy = torch.rand(num_priors, 2, generator=g) * 48
    wh = torch.rand(num_priors, 2, generator=g) * 24 + 4
    priors = torch.cat([xy, xy + wh], 1)
    gxy = torch.rand(batch, num_gt, 2, generator=g) * 40
    gwh = torch.rand(batch, num_gt, 2, generator=g) * 30 + 6
    gt = torch.cat([gxy, gxy + gwh], 2)
    counts = [5, 2, 0]
    valid = torch.arange(num_gt)[None] < torch.tensor(counts)[:, None]
    prior_valid = torch.rand(batch, num_priors, generator=g) > 0.2
    iou = prior_ious(priors, gt, valid)
    ours = max_iou_assign(iou, torch.full((batch, num_gt), 0.5), valid, prior_valid,
                          min_pos_iou, assign_all)
    assigner = MaxIoUAssigner(
        pos_iou_thr=0.5,
        neg_iou_thr=0.4,
        min_pos_iou=min_pos_iou or 0.0,
        match_low_quality=min_pos_iou is not None,
        gt_max_assign_all=assign_all)
    for b, n in enumerate(counts):
        inside = prior_valid[b]
        result = assigner.assign(
            InstanceData(priors=priors[inside]),
            InstanceData(bboxes=gt[b, :n], labels=torch.zeros(n, dtype=torch.long)))
        expected = torch.full((num_priors, ), -1, dtype=torch.long)
        gt_inds = result.gt_inds
        expected[inside] = torch.where(gt_inds > 0, gt_inds - 1, torch.full_like(gt_inds, -1))
        torch.testing.assert_close(ours[b], expected, rtol=0, atol=0)
    assert (ours >= 0).any() and (ours[2] == -1).all()


@pytest.mark.parametrize('allowed_border', [-1, 0])
def test_anchor_valid_flags_match_mmdet_head(allowed_border):
    head = MODELS.build(tiny_model_cfg('retina', 8)).bbox_head
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    metas = [dict(pad_shape=(64, 64), img_shape=(60, 50)),
             dict(pad_shape=(40, 48), img_shape=(40, 45)), dict(batch_input_shape=(64, 64))]
    priors = torch.cat(head.prior_generator.grid_priors(sizes, device='cpu'))
    flags = anchor_valid_flags(head.prior_generator, sizes, metas, priors, allowed_border)
    # mmdet's path: get_anchors' valid flags, then anchor_inside_flags in _get_targets_single
    _, valid_list = head.get_anchors(sizes, metas[:2], device='cpu')
    for b in range(2):
        expected = torch.cat(valid_list[b])
        expected = anchor_inside_flags(priors, expected, metas[b]['img_shape'], allowed_border)
        torch.testing.assert_close(flags[b], expected, rtol=0, atol=0)
    assert not flags[1].all() and flags[2].all()  # image 1 is padded; 2 has no pad_shape
