# PKD on the synthetic cross-family pair RetinaNet R18-w48 -> GFL R18-w32: the four FPN
# levels of both (P3-P6, same strides), loss_weight 10 (mmrazor's one-stage teacher value),
# a 1x1 adapter per level (64 -> 96, 'auto'). 50-iteration warm-up.
_base_ = '../_base_/pairs/retina_r18w48_gfl_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=50)
