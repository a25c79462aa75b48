# PKD on the synthetic cross-family pair Faster R-CNN R18-w48 -> RetinaNet R18-w32: student
# P3-P6 (levels 0-3) paired with teacher P3-P6 (levels 1-4, after the teacher's P2);
# loss_weight 6 (mmrazor's two-stage teacher value); a 1x1 adapter per level (64 -> 96,
# 'auto'). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_retina_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0, adapter='auto')),
    warmup_iters=50)
