# ICD (Li et al., AAAI 2022): Rank Mimicking + Prediction-guided Feature Imitation on
# RetinaNet R101 2x (38.9) -> R50 2x, COCO 2017 (review Table 2: 39.6; paper: 40.4 with
# its own teacher). Loss weights RM 4, PFI 1.5: the RetinaNet config of the ICD draft in an
# open-mmlab/mmrazor branch (the paper's method section was not available here; see README).
# RM candidates: the student head's anchors with its MaxIoUAssigner (IoU >= 0.5 plus
# low-quality matches). PFI: all five neck levels, 1x1 adapter (widths are equal, 256).
# No distillation warm-up (the draft has none; mmdet's 500-iteration LR warm-up applies).
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_rm=dict(type='RankMimickingLoss', loss_weight=4.0),
        loss_pfi=dict(type='PFILoss', loss_weight=1.5)),
    warmup_iters=0)
