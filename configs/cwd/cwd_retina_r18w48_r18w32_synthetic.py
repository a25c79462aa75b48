# CWD on the embedded synthetic data (RetinaNet pair): tau 1, loss_weight 10
# (mmrazor's FPN setting); a 1x1 adapter maps the student's 64 channels to 96.
# 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=50)
