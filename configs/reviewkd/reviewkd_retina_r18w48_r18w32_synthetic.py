# ReviewKD on the embedded synthetic RetinaNet pair: all neck levels, the authors' HCL
# (pooled sizes 4, 2, 1) and loss_weight 1.0 (untuned). The ABF modules map the student's
# 64 channels to the teacher's 96 (C_mid = 96, the teacher's width). 50-iteration warm-up,
# as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_reviewkd=dict(type='ReviewKDLoss', loss_weight=1.0)),
    warmup_iters=50)
