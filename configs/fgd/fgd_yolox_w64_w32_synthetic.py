# FGD with the authors' RetinaNet hyper-parameters on the embedded synthetic YOLOX pair
# (three YOLOXPAFPN levels of strides 8/16/32; student 32 -> teacher 64 channels through the
# loss's adapter). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/yolox_w64_w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='retinanet')),
    warmup_iters=50)
