# Mimic + PAD on Pascal VOC 07+12, the review's setting (Table 3: R101 -> R50 FPN, 81.11
# mAP; Mimic alone 80.90): teacher = your Faster R-CNN R101 VOC model
# (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py), student = mmdet's VOC Faster
# R-CNN R50. Loss settings as pad_faster_rcnn_r101_r50_mimic.py.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_pad=dict(
            type='PADLoss',
            loss=dict(type='MimicLoss', rois='proposals', normalize='dims', loss_weight=1.0),
            granularity='location')),
    warmup_iters=0)
