# PKD: Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017; mmrazor's Faster R-CNN
# setting: the first four neck levels (P2-P5), loss_weight 6.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0)),
    warmup_iters=0)
