# FGFI (Wang et al., CVPR 2019; a two-stage method): Faster R-CNN R101 2x (39.8) ->
# R50 2x on COCO 2017. Imitation mask from the RPN anchors (IoU > 0.5 x the GT's
# best anchor IoU) on the five FPN levels, 3x3 adapter, imitation weight 0.01 (the
# authors' --ilw).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgfi=dict(type='FGFILoss', loss_weight=0.01)),
    warmup_iters=0)
