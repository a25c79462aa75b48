# PKD on deployment students: RTMDet-m (49.1) -> RTMDet-s (44.5) on COCO 2017 (mmdet model zoo).
# The three CSPNeXtPAFPN outputs (strides 8/16/32), loss_weight 10 (mmrazor's one-stage
# value; no published PKD setting for RTMDet), a 1x1 adapter per level (128 -> 192
# channels; not in the paper). Distillation stops at epoch 280, where the student's
# no-mosaic stage begins (the two-stage scheme of mmyolo's RTMDet distillation).
_base_ = '../_base_/pairs/rtmdet_m_s_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=0,
    stop_epoch=280)
