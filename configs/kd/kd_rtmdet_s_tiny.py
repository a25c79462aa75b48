# Logit KD on a deployment student: RTMDet-s (44.5) -> RTMDet-tiny (40.9) on COCO 2017 (mmdet
# model zoo). RTMDetSepBNHead's sigmoid class logits (bbox_head output 0): one point prior per
# cell, 80 classes, so channels_per_prior=80; T 1 and loss_weight 1 as the RetinaNet config (no
# published logit-KD setting for RTMDet: our choice). Distillation stops at epoch 280, where the
# student's no-mosaic stage begins (the two-stage scheme of mmyolo's RTMDet distillation).
_base_ = '../_base_/pairs/rtmdet_s_tiny_coco.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_kd=dict(type='LogitKDLoss', temperature=1.0, channels_per_prior=80, loss_weight=1.0)),
    warmup_iters=0,
    stop_epoch=280)
