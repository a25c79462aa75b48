# TID on RetinaNet, COCO: teacher RetinaNet R101 2x (model zoo, 38.9) -> R50 2x.
# IoU thresholds from RetinaNet's MaxIoUAssigner (0.5 / 0.4); the A = 9 anchors
# of a location share its score (max over them). loss_weight = FRS's alpha.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.005)),
    warmup_iters=500)
