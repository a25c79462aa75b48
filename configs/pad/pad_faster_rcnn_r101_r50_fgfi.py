# FGFI + PAD (Zhang et al., ECCV 2020): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# The FGFI loss of configs/fgfi/fgfi_faster_rcnn_r101_r50.py (imitation mask from the RPN
# anchors, five FPN levels, 3x3 adapter, weight 0.01), its per-element squared errors
# reweighted by a learned variance (one per location, zero-initialised: PAD starts as plain
# FGFI). The paper gives no COCO detection setting.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_pad=dict(
            type='PADLoss', loss=dict(type='FGFILoss', loss_weight=0.01), granularity='location')),
    warmup_iters=0)
