# TADF on Pascal VOC 07+12 (the review's Table 3 row: R101 -> R50, 74.50 mAP, a non-FPN
# Faster R-CNN with student 70.0 / teacher 74.3). Our VOC pair is the FPN one: teacher =
# your Faster R-CNN R101-FPN VOC model (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py),
# student = mmdet's VOC Faster R-CNN R50-FPN. Loss settings as tadf_faster_rcnn_r101_r50.py.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_tadf=dict(
            type='TADFLoss',
            feat_weight=0.01,
            cls_weight=1.0,
            reg_weight=1.0,
            reg_gate='proposal',
            decay='epoch')),
    warmup_iters=0)
