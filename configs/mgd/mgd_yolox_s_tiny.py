# MGD on a deployment student: YOLOX-s (40.5) -> YOLOX-tiny (32.0) on COCO 2017 (mmdet model
# zoo). alpha_mgd 2e-5, lambda_mgd 0.65 (the authors' RetinaNet setting; none is published for
# YOLOX) on the three YOLOXPAFPN outputs; the 1x1 align conv maps 96 -> 128 channels.
# Distillation stops at epoch 285 (the no-mosaic stage).
_base_ = '../_base_/pairs/yolox_s_tiny_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)),
    warmup_iters=0,
    stop_epoch=285)
