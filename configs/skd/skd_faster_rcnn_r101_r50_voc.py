# Structured KD on Pascal VOC 07+12 (20 classes): teacher = your Faster R-CNN
# R101 VOC model (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py), student = mmdet's
# VOC Faster R-CNN R50 with its VOC schedule; the loss settings are those of
# skd_faster_rcnn_r101_r50.py (two-stage hyper-parameters, FPN P2-P6).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_skd=dict(
            type='SKDLoss',
            preset='paper_two_stage',
            nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)))))
