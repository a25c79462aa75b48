# DKD (Zhao et al., CVPR 2022): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# The authors' detection setting (megvii-research/mdistiller, detection/model/config.py and
# rcnn.py): R-CNN classification logits (80 classes + background) on the student's sampled
# RoIs, the teacher's R-CNN head run on them; alpha = 1, beta = 0.25, T = 1, mean over RoIs.
# The recorder gives the teacher's FPN levels its RoI extractor reads (P2-P5).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=0.25, temperature=1.0, rois='sampled',
            loss_weight=1.0)),
    warmup_iters=0)
