# DeFeat on RetinaNet R101 2x (38.9) -> R50 2x, COCO 2017 (P3-P7, the authors'
# level rule unchanged), weights 3 / 12.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_defeat=dict(type='DeFeatLoss', fg_weight=3.0, bg_weight=12.0)),
    warmup_iters=0)
