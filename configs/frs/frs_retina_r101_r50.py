# FRS (Du et al., NeurIPS 2021): RetinaNet R101 2x (38.9) -> RetinaNet R50 2x on COCO 2017.
# alpha (FPN, Eq. 6) = 0.005, beta (cls head, Eq. 7) = 0.02, 500-iteration warm-up,
# as the authors' config. Schedule, optimizer and data come from the student's mmdet
# config (8 GPUs x 2 images, SGD lr 0.01, 24 epochs).
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),  # P3-P7 neck outputs
        cls=dict(source='bbox_head', index=0)),  # head forward -> cls logits per level
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=500)
