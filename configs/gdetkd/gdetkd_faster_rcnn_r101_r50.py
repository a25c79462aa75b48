# G-DetKD (Yao et al., ICCV 2021): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# The review's row (Table 1: 41.0 mAP; CKD alone 40.3) uses an R152 teacher, which our model
# zoo does not have: R101 here. SGFI + CKD on the ground-truth boxes; the student's RoIs from
# all of P2-P6 (1x1 adaptation per level), the teacher's from its RoIAlign level; CKD on the
# R-CNN shared-fc embeddings (1024 -> 1024 linear projection), gamma 0.07, a memory of 1024
# teacher keys. Weights SGFI 1, CKD 0.5: those of a third-party re-implementation (HEAD's
# configs/kd/gdet*.py), the paper's could not be checked.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_gdetkd=dict(
            type='GDetKDLoss',
            rois='gt',
            sgfi_weight=1.0,
            ckd_weight=0.5,
            ckd_feature='rcnn',
            ckd_channels=(1024, 1024),
            ckd_temperature=0.07,
            memory_size=1024)),
    warmup_iters=0)
