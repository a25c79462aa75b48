# FGFI on RetinaNet R101 2x (38.9) -> R50 2x, COCO 2017: imitation mask from the
# RetinaNet anchors, weight 0.01.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgfi=dict(type='FGFILoss', loss_weight=0.01)),
    warmup_iters=0)
