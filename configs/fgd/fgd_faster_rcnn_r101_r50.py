# FGD on Faster R-CNN R101 2x (39.8) -> R50 2x, COCO 2017: the authors' two-stage
# setting (P2-P5 only, T 0.5, alpha 5e-5, beta 2.5e-5, gamma 5e-5, lambda 5e-7,
# gradient clipping 35).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='faster_rcnn')),
    warmup_iters=0)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
