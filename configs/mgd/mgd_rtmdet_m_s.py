# MGD on a deployment student: RTMDet-m (49.1) -> RTMDet-s (44.5) on COCO 2017 (mmdet
# model zoo). alpha_mgd 2e-5, lambda_mgd 0.65 (the authors' RetinaNet setting; none is
# published for RTMDet) on the three CSPNeXtPAFPN outputs; the 1x1 align conv maps
# 128 -> 192 channels. Distillation stops at epoch 280 (the no-mosaic stage).
_base_ = '../_base_/pairs/rtmdet_m_s_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)),
    warmup_iters=0,
    stop_epoch=280)
