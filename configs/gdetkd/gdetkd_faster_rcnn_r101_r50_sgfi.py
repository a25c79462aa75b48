# G-DetKD ablation: SGFI alone (no CKD), otherwise as gdetkd_faster_rcnn_r101_r50.py
# (COCO, Faster R-CNN R101 2x -> R50 2x; the paper's teacher is R152).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_gdetkd=dict(type='GDetKDLoss', rois='gt', sgfi_weight=1.0, ckd_weight=0.0)),
    warmup_iters=0)
