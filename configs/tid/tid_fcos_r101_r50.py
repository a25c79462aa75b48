# TID on FCOS (caffe R101 ms-2x -> R50 ms-2x). FCOS assigns by location and
# scale, not by IoU, so Eq. 1's thresholds are given explicitly: (0.5, 0.4),
# RetinaNet's. loss_weight = FRS's alpha for FCOS.
_base_ = '../_base_/pairs/fcos_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.01, iou_thrs=(0.5, 0.4))),
    warmup_iters=500)
