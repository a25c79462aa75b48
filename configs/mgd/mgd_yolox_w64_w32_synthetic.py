# MGD on the embedded synthetic YOLOX pair: alpha_mgd 2e-5, lambda_mgd 0.65 on the three
# YOLOXPAFPN outputs; the 1x1 align conv maps 32 -> 64 channels. 50-iteration warm-up, as
# every synthetic distillation config.
_base_ = '../_base_/pairs/yolox_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)),
    warmup_iters=50)
