# PKD from a DETR-family teacher: DINO-4scale R50 (49.0) -> RetinaNet R50 2x on COCO 2017.
# The teacher's 4 neck levels (strides 8-64) pair with the student's P3-P6 of the same strides;
# mmrazor's RetinaNet PKD weight (10). No published number for this pair; not trained here.
_base_ = '../_base_/pairs/dino_r50_retina_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0)))
