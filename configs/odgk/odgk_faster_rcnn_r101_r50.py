# ODGK (Tang et al., ECCV 2022): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017, the
# paper's and the review's pair (review Table 1: 40.6 mAP). Instances: ground-truth boxes,
# P2-P5 pooled by each detector's own RoIAlign extractor. PGM settings of the authors'
# configs/faster_rcnn_coco_kd_config.py: 10 prototypes per class, alpha 10, boxes > 30 px;
# loss_weight 5 = their pair_wise_factor. Online bank (ours): the last 128 instances per
# class, prototypes re-selected every 500 iterations (the authors: once per epoch).
# local_weight 1: our robustness-weighted RoI feature imitation (closest variant of the
# authors' robust local knowledge, see README). Equal widths (256): no adapter.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_odgk=dict(
            type='ODGKLoss',
            rois='gt',
            num_prototypes=10,
            alpha=10.0,
            bank_size=128,
            update_interval=500,
            min_size=30.0,
            loss_weight=5.0,
            local_weight=1.0)),
    warmup_iters=0)
