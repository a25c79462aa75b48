# FRS on a deployment student: RTMDet-m (49.1) -> RTMDet-s (44.5) on COCO 2017 (mmdet
# model zoo). RTMDetSepBNHead's classification outputs are per-class sigmoid logits (QFL),
# one point prior per cell, as GFL's: the FRS authors' GFL weights (alpha 0.1 on the
# three CSPNeXtPAFPN outputs, beta 0.05 on the logits). Distillation stops at epoch 280.
_base_ = '../_base_/pairs/rtmdet_m_s_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.1),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.05)),
    warmup_iters=0,
    stop_epoch=280)
