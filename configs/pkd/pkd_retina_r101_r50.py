# PKD (Cao et al., NeurIPS 2022): RetinaNet R101 2x (38.9) -> R50 2x on COCO 2017.
# mmrazor's PKD configs: the first four neck levels (P3-P6), loss_weight 10 for a
# RetinaNet teacher, no adapter (equal widths), student resized if sizes differ.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0)),
    warmup_iters=0)
