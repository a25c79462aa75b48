# CWD: Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017; mmrazor's
# cwd_fpn_frcnn config: five neck levels (P2-P6), tau 1, loss_weight 10.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=0)
