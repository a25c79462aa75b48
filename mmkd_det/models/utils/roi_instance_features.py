r"""Instance features of RoIs beyond one-level pooling (used by G-DetKD: Yao et al.,
"G-DetKD: Towards General Distillation Framework for Object Detectors via Contrastive
and Semantic-guided Feature Imitation", ICCV 2021).

* :func:`pool_every_level`: every RoI pooled from *every* FPN level (RoIAlign at
  each level's stride), for a soft matching of levels.
* :func:`roi_head_embeddings`: the R-CNN box head's shared branch (shared convs,
  flatten, shared fcs with ReLU, as mmdet's ``ConvFCBBoxHead.forward``) on RoIs, the
  instance embedding before the classifier / regressor.
* :func:`same_image_ious`: pairwise IoU of RoIs of the same image (0 across images).
"""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn


def pool_every_level(feats: Sequence[Tensor],
                     rois: Tensor,
                     strides: Sequence[int],
                     output_size: int = 7,
                     sampling_ratio: int = 0,
                     aligned: bool = True) -> Tensor:
    """RoIAlign of every RoI on every level.

    Args:
        feats (Sequence[Tensor]): L levels (B, C, H_l, W_l).
        rois (Tensor): (R, 5) ``(image index, x1, y1, x2, y2)`` in input pixels.
        strides (Sequence[int]): the stride of each level (``spatial_scale = 1 / s``).
        output_size (int): S.
        sampling_ratio (int): mmcv's (0: adaptive).
        aligned (bool): mmcv's half-pixel alignment (mmdet's default True).

    Returns:
        Tensor: (L, R, C, S, S).
    """
    from mmcv.ops import roi_align
    if len(feats) != len(strides):
        raise ValueError(f'pool_every_level: {len(feats)} levels but {len(strides)} strides '
                         f'({list(strides)}); give one stride per level.')
    rois = rois.to(feats[0].dtype)
    if rois.shape[0] == 0:
        return feats[0].new_zeros(len(feats), 0, feats[0].shape[1], output_size, output_size) + \
            sum(f.sum() for f in feats) * 0
    return torch.stack([
        roi_align(f, rois, (output_size, output_size), 1.0 / s, sampling_ratio, 'avg', aligned)
        for f, s in zip(feats, strides)
    ])


def roi_head_embeddings(detector: nn.Module, roi_feats: Tensor, grad: bool = True) -> Tensor:
    """The shared branch of the detector's R-CNN box head on pooled RoI features.

    Args:
        detector (nn.Module): a two-stage detector whose ``roi_head.bbox_head`` is an
            mmdet ``ConvFCBBoxHead`` (``Shared2FCBBoxHead`` and the like).
        roi_feats (Tensor): (R, C, S, S) pooled with its own extractor.
        grad (bool): False: under ``no_grad``, detached (the teacher).

    Returns:
        Tensor: (R, D), D = ``fc_out_channels`` (or the flattened conv output when the
        head has no shared fc).
    """
    head = getattr(getattr(detector, 'roi_head', None), 'bbox_head', None)
    if head is None or not hasattr(head, 'shared_fcs'):
        raise TypeError(f'{type(detector).__name__} has no ConvFCBBoxHead-like '
                        f'roi_head.bbox_head (shared_convs / shared_fcs); the R-CNN '
                        f'embedding needs one (or use the RoI features instead).')
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        x = roi_feats
        for conv in head.shared_convs:
            x = conv(x)
        if head.num_shared_fcs > 0:
            if head.with_avg_pool:
                x = head.avg_pool(x)
            x = x.flatten(1)
            for fc in head.shared_fcs:
                x = head.relu(fc(x))
        x = x.flatten(1)
    return x if grad else x.detach()


def same_image_ious(rois: Tensor, eps: float = 1e-6) -> Tensor:
    """(R, R) IoU of RoIs ``(image index, x1, y1, x2, y2)``, 0 for pairs of different
    images."""
    boxes = rois[:, 1:5]
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=eps)
    return iou * (rois[:, None, 0] == rois[None, :, 0]).to(iou.dtype)


def level_strides_from(extractor: Optional[nn.Module], num_levels: int, first: int = 4) -> list:
    """Strides of ``num_levels`` FPN levels: the extractor's ``featmap_strides`` extended
    by doubling (P6 = 64 after P5 = 32), or ``first * 2^l`` without an extractor."""
    base = list(getattr(extractor, 'featmap_strides', [])) or [first]
    strides = [int(s) for s in base[:num_levels]]
    while len(strides) < num_levels:
        strides.append(strides[-1] * 2)
    return strides
