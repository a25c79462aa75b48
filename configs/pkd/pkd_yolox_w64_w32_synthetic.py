# PKD on the embedded synthetic YOLOX pair: the three YOLOXPAFPN levels, loss_weight
# 10, a 1x1 adapter per level (32 -> 64 channels). 50-iteration warm-up, as every
# synthetic distillation config.
_base_ = '../_base_/pairs/yolox_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=50)
