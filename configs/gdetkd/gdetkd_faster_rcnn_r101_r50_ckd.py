# G-DetKD ablation: CKD alone (the review's "CKD" row, 40.3 mAP with an R152 teacher),
# otherwise as gdetkd_faster_rcnn_r101_r50.py (COCO, Faster R-CNN R101 2x -> R50 2x).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_gdetkd=dict(
            type='GDetKDLoss',
            rois='gt',
            sgfi_weight=0.0,
            ckd_weight=0.5,
            ckd_feature='rcnn',
            ckd_channels=(1024, 1024),
            ckd_temperature=0.07,
            memory_size=1024)),
    warmup_iters=0)
