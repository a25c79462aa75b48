# PKD on deployment students: YOLOX-s (40.5) -> YOLOX-tiny (32.0) on COCO 2017 (mmdet model zoo).
# The three YOLOXPAFPN outputs (strides 8/16/32), loss_weight 10 (mmrazor's one-stage
# value; no published YOLOX setting), a 1x1 adapter per level (96 -> 128 channels;
# not in the paper). Distillation stops at epoch 285, where YOLOXModeSwitchHook turns
# mosaic / mixup off for the last 15 epochs (as mmyolo stops RTMDet's at its pipeline
# switch; our choice for YOLOX).
_base_ = '../_base_/pairs/yolox_s_tiny_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=0,
    stop_epoch=285)
