# CWD on a deployment student: YOLOX-s (40.5) -> YOLOX-tiny (32.0) on COCO 2017 (mmdet model
# zoo). The three YOLOXPAFPN outputs (strides 8/16/32), tau 1, loss_weight 10 (mmrazor's FPN
# setting; no published CWD setting for YOLOX: our choice), a 1x1 adapter per level (96 -> 128
# channels). Distillation stops at epoch 285, where YOLOXModeSwitchHook turns mosaic / mixup off.
_base_ = '../_base_/pairs/yolox_s_tiny_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=0,
    stop_epoch=285)
