# CWD on the synthetic cross-family pair RetinaNet R18-w48 -> GFL R18-w32: all four FPN
# levels (same strides), tau 1, loss_weight 10 (mmrazor's FPN setting), a 1x1 adapter
# 64 -> 96. 50-iteration warm-up.
_base_ = '../_base_/pairs/retina_r18w48_gfl_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=50)
