# PKD from a transformer-backbone two-stage teacher: Mask R-CNN Swin-S 3x (48.2) ->
# RetinaNet R50 2x on COCO 2017, the pair of the PKD paper and mmrazor (41.5 there).
# loss_weight 6 and SGD lr 0.01 (the student config's) as mmrazor. Pairing: by stride
# here (student P3-P6 with teacher P3-P6); mmrazor pairs by index (teacher P2-P5 with
# student P3-P6, the student resized up): that is levels=[0, 1, 2, 3] without
# teacher_levels (PKD resizes the student by default).
_base_ = '../_base_/pairs/mask_rcnn_swin_s_retina_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0)),
    warmup_iters=0)
