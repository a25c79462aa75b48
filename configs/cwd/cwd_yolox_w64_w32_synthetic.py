# CWD on the embedded synthetic YOLOX pair: the three YOLOXPAFPN outputs, tau 1, loss_weight
# 10 (mmrazor's FPN setting); a 1x1 adapter maps 32 -> 64 channels. 50-iteration warm-up, as
# every synthetic distillation config.
_base_ = '../_base_/pairs/yolox_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=50)
