"""Helpers shared by the distillation losses and connectors."""
from .adapter_init import init_adapters
from .assigner_thresholds import assigner_thresholds, atss_thresholds
from .box_masks import gt_box_masks
from .dense_head_outputs import DenseOutputs, decode_dense_outputs
from .fpn_levels import (check_level_strides, level_strides, map_gt_levels, resolve_strides,
                         split_levels)
from .gt_boxes import pad_gt
from .prior_ious import prior_ious
from .topk_mask import TOPK_SCOPES, topk_count, topk_mask

__all__ = [
    'init_adapters', 'assigner_thresholds', 'atss_thresholds', 'gt_box_masks', 'DenseOutputs',
    'decode_dense_outputs', 'check_level_strides', 'level_strides', 'map_gt_levels',
    'resolve_strides', 'split_levels', 'pad_gt', 'prior_ious', 'TOPK_SCOPES', 'topk_count',
    'topk_mask'
]
