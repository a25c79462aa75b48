# CWD on the embedded synthetic RTMDet pair: the three CSPNeXtPAFPN outputs, tau 1,
# loss_weight 10 (the synthetic RetinaNet config's, mmrazor's FPN setting); a 1x1 adapter
# maps 32 -> 64 channels. 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/rtmdet_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=50)
