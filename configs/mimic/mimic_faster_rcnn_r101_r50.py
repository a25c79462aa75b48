# Mimic (Li, Jin, Yan, CVPR 2017): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# Feature mimicking on the student's RPN proposals of each step (all of them, before the
# R-CNN sampler), P2-P5 pooled by each detector's own RoIAlign extractor, Eq. 5
# (normalised by the proposal feature's dimension and 2N). Equal widths (256): no
# transform layer. loss_weight = lambda of Eq. 2 = 1 (not tuned here; the paper gives no
# COCO setting).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_mimic=dict(type='MimicLoss', rois='proposals', normalize='dims', loss_weight=1.0)),
    warmup_iters=0)
