# TID on RetinaNet, COCO 1x: teacher RetinaNet R101 (model zoo, 38.9) -> R50.
# IoU thresholds from RetinaNet's MaxIoUAssigner (0.5 / 0.4); the A = 9 anchors
# of a location share its score (max over them). loss_weight = FRS's alpha.
_base_ = '../frs/frs_retina_r101_r50.py'
model = dict(
    recorders=dict(_delete_=True,
                   fpn=dict(source='neck'),
                   cls=dict(source='bbox_head', index=0),
                   reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(_delete_=True, loss_tid=dict(type='TIDLoss', loss_weight=0.005)))
