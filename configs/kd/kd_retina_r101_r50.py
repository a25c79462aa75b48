# Logit KD (Hinton et al. 2015, Eq. 2) on the classification head: RetinaNet R101 2x
# (38.9) -> R50 2x on COCO 2017. Sigmoid heads: one Bernoulli KL per class, summed
# over the 80 classes of each of the 9 anchors, averaged over anchors and
# locations. T = 1 and weight 1 (no reference config distils all RetinaNet
# logits; these were not tuned). No warm-up, as the other review methods' COCO configs.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_kd=dict(type='LogitKDLoss', temperature=1.0, channels_per_prior=80, loss_weight=1.0)),
    warmup_iters=0)
