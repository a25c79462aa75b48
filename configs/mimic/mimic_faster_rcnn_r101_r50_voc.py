# Mimic on Pascal VOC 07+12 (20 classes), the review's setting (Table 3: R101 -> R50 FPN,
# 80.90 mAP): teacher = your Faster R-CNN R101 VOC model
# (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py), student = mmdet's VOC Faster
# R-CNN R50 with its VOC schedule; the loss settings are those of mimic_faster_rcnn_r101_r50.py.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_mimic=dict(type='MimicLoss', rois='proposals', normalize='dims', loss_weight=1.0)),
    warmup_iters=0)
