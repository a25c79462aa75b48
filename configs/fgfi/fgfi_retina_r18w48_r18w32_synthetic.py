# FGFI (imitation mask from the student's anchors), weight 0.01 as the COCO configs, on
# the embedded synthetic RetinaNet pair (student 64 -> teacher 96 channels through the
# loss's adapter). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgfi=dict(type='FGFILoss', loss_weight=0.01)),
    warmup_iters=50)
