# ReviewKD (Chen et al., CVPR 2021): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# Authors' detection code (dvlab-research/ReviewKD, Detection/): the five FPN outputs
# (P2-P6), ABF modules with 256 mid channels, HCL with pooled sizes 4, 2, 1 and
# REVIEWKD_LOSS_WEIGHT 1.0 (configs/ReviewKD-R50-R101.yaml).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_reviewkd=dict(type='ReviewKDLoss', loss_weight=1.0)),
    warmup_iters=0)
