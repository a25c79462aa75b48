# DeFeat (GT-decoupled fg/bg neck loss), weights 3 / 12 as the COCO configs, on the
# embedded synthetic RetinaNet pair (student 64 -> teacher 96 channels through the
# loss's adapter). 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_defeat=dict(type='DeFeatLoss', fg_weight=3.0, bg_weight=12.0)),
    warmup_iters=50)
