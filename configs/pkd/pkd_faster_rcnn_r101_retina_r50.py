# PKD across detector families (Cao et al., NeurIPS 2022): Faster R-CNN R101 2x (39.8) ->
# RetinaNet R50 2x on COCO 2017. The strides are paired explicitly: student P3-P6 (its
# levels 0-3) with teacher P3-P6 (its levels 1-4; the teacher's P2 and the student's P7
# have no partner). loss_weight 6, mmrazor's value for two-stage teachers; both FPNs are
# 256 wide (no adapter) and the paired levels have equal sizes (nothing is resized).
_base_ = '../_base_/pairs/faster_rcnn_r101_retina_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0)),
    warmup_iters=0)
