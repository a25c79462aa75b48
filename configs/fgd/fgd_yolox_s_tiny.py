# FGD on a deployment student: YOLOX-s (40.5) -> YOLOX-tiny (32.0) on COCO 2017 (mmdet model
# zoo). The authors' RetinaNet hyper-parameters (none are published for YOLOX) on the three
# YOLOXPAFPN outputs (strides 8/16/32; GT boxes land on the cells of each level through the
# batch's input shape, also after YOLOX's batch random resize), their gradient clipping (35);
# 1x1 adapter 96 -> 128. Distillation stops at epoch 285 (the no-mosaic stage).
_base_ = '../_base_/pairs/yolox_s_tiny_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='retinanet')),
    warmup_iters=0,
    stop_epoch=285)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
