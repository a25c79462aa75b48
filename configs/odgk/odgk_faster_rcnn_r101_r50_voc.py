# ODGK on Pascal VOC 07+12 (20 classes), the review's setting (Table 3: R101 -> R50 FPN,
# 82.90 mAP): teacher = your Faster R-CNN R101 VOC model
# (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py), student = mmdet's VOC Faster
# R-CNN R50 with its VOC schedule; the loss settings are those of odgk_faster_rcnn_r101_r50.py
# except a shorter prototype interval for the shorter VOC epochs.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_odgk=dict(
            type='ODGKLoss',
            rois='gt',
            num_prototypes=10,
            alpha=10.0,
            bank_size=128,
            update_interval=200,
            min_size=30.0,
            loss_weight=5.0,
            local_weight=1.0)),
    warmup_iters=0)
