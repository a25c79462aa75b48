# FitNet hints (1x1 adapter, MSE), weight 1 as the COCO config, on the embedded synthetic
# RetinaNet pair (student 64 -> teacher 96 channels through the adapter). 50-iteration
# warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fitnet=dict(type='FitNetLoss', loss_weight=1.0)),
    warmup_iters=50)
