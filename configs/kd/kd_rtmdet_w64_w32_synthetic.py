# Logit KD on the embedded synthetic RTMDet pair: RTMDetSepBNHead's sigmoid class logits,
# one point prior per cell, 6 classes; T 1, weight 1 (untuned). 50-iteration warm-up, as
# every synthetic distillation config.
_base_ = '../_base_/pairs/rtmdet_w64_w32_synthetic.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_kd=dict(type='LogitKDLoss', temperature=1.0, channels_per_prior=6, loss_weight=1.0)),
    warmup_iters=50)
