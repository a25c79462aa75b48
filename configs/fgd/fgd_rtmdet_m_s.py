# FGD on a deployment student: RTMDet-m (49.1) -> RTMDet-s (44.5) on COCO 2017 (mmdet
# model zoo). The authors' RetinaNet hyper-parameters (none are published for RTMDet)
# on the three CSPNeXtPAFPN outputs (strides 8/16/32; GT boxes land on the cells of each
# level through batch_input_shape), their gradient clipping (35); 1x1 adapter 128 -> 192.
# Distillation stops at epoch 280 (the no-mosaic stage).
_base_ = '../_base_/pairs/rtmdet_m_s_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='retinanet')),
    warmup_iters=0,
    stop_epoch=280)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
