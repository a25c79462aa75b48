# FRS on Faster R-CNN: R101 2x (39.8) -> R50 2x, alpha 0.002, beta 0.1 (authors'
# config). The "classification head" is the RPN objectness (no RoI-head loss).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='rpn_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.002),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.1)),
    warmup_iters=500)
