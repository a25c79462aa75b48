# DeFeat (Guo et al., CVPR 2021; GT-decoupled neck distillation): Faster R-CNN R101
# 2x (39.8) -> R50 2x on COCO 2017; object / background weights 3 / 12 (the
# authors' VOC config; their head-decoupling KL is off there too and not built).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_defeat=dict(type='DeFeatLoss', fg_weight=3.0, bg_weight=12.0)),
    warmup_iters=0)
