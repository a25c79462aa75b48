"""RoI instance features for G-DetKD: all-level RoIAlign on a map linear in x (values by
hand), the R-CNN shared-branch embedding against mmdet's own head forward, same-image
IoUs by hand, level strides."""
import pytest
import torch

from mmkd_det.models.utils.roi_instance_features import (level_strides_from, pool_every_level,
                                                         roi_head_embeddings, same_image_ious)
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def _x_map(width):
    return torch.arange(float(width)).view(1, 1, 1, width).expand(1, 1, width, width).contiguous()


def test_pool_every_level_by_hand():
    """Box [0, 0, 4, 4], 2 x 2 bins, one sample at each bin centre (aligned: -0.5 pixel).
    Stride 1: x = -0.5 + (j + 0.5) * 2 = 0.5, 2.5. Stride 2 (box 0..2): x = -0.5 + (j + 0.5)
    = 0, 1. The maps hold their x index, so the pooled values are those x."""
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    out = pool_every_level([_x_map(8), _x_map(4)], rois, [1, 2], output_size=2, sampling_ratio=1)
    assert out.shape == (2, 1, 1, 2, 2)
    assert out[0, 0, 0].tolist() == [[0.5, 2.5], [0.5, 2.5]]
    assert out[1, 0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    empty = pool_every_level([_x_map(8).requires_grad_()], torch.zeros(0, 5), [1], 2)
    assert empty.shape == (1, 0, 1, 2, 2)
    with pytest.raises(ValueError, match='one stride per level'):
        pool_every_level([_x_map(8)], rois, [1, 2])


def test_roi_head_embeddings_feed_the_heads_classifier():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('faster', 8))
    head = model.roi_head.bbox_head
    x = torch.randn(3, 16, 7, 7)
    emb = roi_head_embeddings(model, x)
    assert emb.shape == (3, 32) and emb.requires_grad
    cls_score, _ = head(x)
    assert torch.allclose(head.fc_cls(emb), cls_score, atol=1e-6)
    assert not roi_head_embeddings(model, x, grad=False).requires_grad
    with pytest.raises(TypeError, match='ConvFCBBoxHead'):
        roi_head_embeddings(MODELS.build(tiny_model_cfg('retina', 8)), x)


def test_same_image_ious_by_hand():
    """[0, 0, 2, 2] and [1, 0, 3, 2]: intersection 2, union 6 -> 1/3; another image: 0."""
    rois = torch.tensor([[0., 0., 0., 2., 2.], [0., 1., 0., 3., 2.], [1., 0., 0., 2., 2.]])
    iou = same_image_ious(rois)
    expected = torch.tensor([[1., 1 / 3, 0.], [1 / 3, 1., 0.], [0., 0., 1.]])
    assert torch.allclose(iou, expected)


def test_level_strides_from():
    model = MODELS.build(tiny_model_cfg('faster', 8))
    assert level_strides_from(model.roi_head.bbox_roi_extractor, 5) == [4, 8, 16, 32, 64]
    assert level_strides_from(None, 3, first=8) == [8, 16, 32]
