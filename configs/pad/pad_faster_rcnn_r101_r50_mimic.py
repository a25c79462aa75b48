# Mimic + PAD (Zhang et al., ECCV 2020): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# The Mimic loss of configs/mimic/mimic_faster_rcnn_r101_r50.py (the student's RPN
# proposals, P2-P5, Eq. 5, lambda = 1), its per-element squared errors reweighted by a
# learned variance (one per RoI bin, zero-initialised: PAD starts as plain Mimic). The paper
# gives no COCO detection setting; loss_weight is Mimic's.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_pad=dict(
            type='PADLoss',
            loss=dict(type='MimicLoss', rois='proposals', normalize='dims', loss_weight=1.0),
            granularity='location')),
    warmup_iters=0)
