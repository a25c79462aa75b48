# Logit KD on RetinaNet's classification logits on the embedded synthetic RetinaNet
# pair: 6 classes x 9 anchors, T = 1, weight 1. 50-iteration warm-up, as every
# synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_kd=dict(type='LogitKDLoss', temperature=1.0, channels_per_prior=6, loss_weight=1.0)),
    warmup_iters=50)
