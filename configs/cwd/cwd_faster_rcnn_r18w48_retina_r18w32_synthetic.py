# CWD on the synthetic cross-family pair Faster R-CNN R18-w48 -> RetinaNet R18-w32: the
# strides paired as the PKD config (student P3-P6 with the teacher's levels 1-4), tau 1,
# loss_weight 10 (mmrazor's FPN setting), a 1x1 adapter 64 -> 96. 50-iteration warm-up.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_retina_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4])),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=50)
