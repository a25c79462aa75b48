"""Helpers shared by the distillation losses and connectors."""
from .adapter_init import init_adapters
from .assigner_thresholds import assigner_thresholds, atss_thresholds
from .box_masks import gt_box_masks
from .dense_head_outputs import DenseOutputs, decode_dense_outputs
from .fpn_levels import (check_level_strides, level_strides, map_gt_levels, resolve_strides,
                         split_levels)
from .gaussian_masks import gaussian_box_masks
from .general_instances import GeneralInstances, gi_score_and_box, select_general_instances
from .glore import GloReUnit
from .gt_boxes import pad_gt
from .instance_graph import cosine_similarity_matrix, group_sum, same_group_pairs
from .prior_assign import anchor_valid_flags, max_iou_assign
from .prior_ious import prior_ious
from .prototypes import ClassFeatureBank, density_candidates, select_prototypes
from .roi_instance_features import pool_every_level, roi_head_embeddings, same_image_ious
from .roi_records import capture_student_rois, pool_roi_features, teacher_roi_outputs
from .topk_mask import TOPK_SCOPES, topk_count, topk_mask
from .uncertainty_weighting import ElementErrors, VarianceBranch, reduce_element_errors

__all__ = [
    'pool_every_level', 'roi_head_embeddings', 'same_image_ious', 'GloReUnit',
    'cosine_similarity_matrix', 'group_sum', 'same_group_pairs', 'GeneralInstances',
    'gi_score_and_box', 'select_general_instances', 'anchor_valid_flags', 'max_iou_assign',
    'capture_student_rois', 'pool_roi_features', 'teacher_roi_outputs', 'RoICaptureMixin',
    'init_adapters', 'assigner_thresholds', 'atss_thresholds', 'gt_box_masks', 'DenseOutputs',
    'decode_dense_outputs', 'check_level_strides', 'level_strides', 'map_gt_levels',
    'resolve_strides', 'split_levels', 'pad_gt', 'prior_ious', 'TOPK_SCOPES', 'topk_count',
    'topk_mask', 'ClassFeatureBank', 'density_candidates', 'select_prototypes', 'ElementErrors',
    'VarianceBranch', 'reduce_element_errors', 'gaussian_box_masks'
]
