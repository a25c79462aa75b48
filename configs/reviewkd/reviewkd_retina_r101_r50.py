# ReviewKD (Chen et al., CVPR 2021): RetinaNet R101 2x (38.9) -> R50 2x on COCO 2017.
# Authors' detection code (configs/ReviewKD-RT50-RT101.yaml): the five FPN outputs
# (P3-P7), ABF modules with 256 mid channels, HCL with pooled sizes 4, 2, 1,
# REVIEWKD_LOSS_WEIGHT 1.0.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_reviewkd=dict(type='ReviewKDLoss', loss_weight=1.0)),
    warmup_iters=0)
