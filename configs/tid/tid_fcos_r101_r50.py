# TID on FCOS (caffe R101 ms-2x -> R50 ms-2x). FCOS assigns by location and
# scale, not by IoU, so Eq. 1's thresholds are given explicitly: (0.5, 0.4),
# RetinaNet's. loss_weight = FRS's alpha for FCOS.
_base_ = '../frs/frs_fcos_r101_r50.py'
model = dict(
    recorders=dict(_delete_=True,
                   fpn=dict(source='neck'),
                   cls=dict(source='bbox_head', index=0),
                   reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(_delete_=True, loss_tid=dict(
        type='TIDLoss', loss_weight=0.01, iou_thrs=(0.5, 0.4))))
