# FRS on the embedded synthetic RTMDet pair: the FRS authors' GFL weights (alpha 0.1 on
# the three CSPNeXtPAFPN outputs, beta 0.05 on RTMDetSepBNHead's sigmoid class logits,
# one point prior per cell). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/rtmdet_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.1),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.05)),
    warmup_iters=50)
