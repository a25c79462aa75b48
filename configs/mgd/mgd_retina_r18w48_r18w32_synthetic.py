# MGD on the embedded synthetic RetinaNet pair: alpha_mgd 2e-5, lambda_mgd 0.65; the
# 1x1 align conv maps 64 -> 96 channels. Weight inheritance is impossible here
# (neck/head widths differ). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)),
    warmup_iters=50)
