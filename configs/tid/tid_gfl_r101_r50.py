# TID (Task Integration Distillation, section 3 of the paper) on GFL, COCO 1x: teacher
# GFL R101 ms-2x from the mmdet model zoo (44.7 mAP) -> student GFL R50 1x
# (paper Table 1: 40.0 -> 42.0). IoU thresholds: GFL's ATSSAssigner (per-GT
# adaptive, negative = 0.8 x positive). loss_weight 0.1 = FRS's alpha for GFL
# (both normalise by the mask sum); the paper gives no value and it was not
# tuned on COCO. Options and their defaults: configs/tid/README.md.
_base_ = '../_base_/pairs/gfl_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
