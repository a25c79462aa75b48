# G-DetKD on the embedded synthetic Faster R-CNN pair (128 px images): SGFI + CKD on the
# ground-truth boxes, all five FPN levels of the student (1x1 adaptation 64 -> 96 per level),
# CKD on the R-CNN shared-fc embeddings (256 -> 256), a memory of 256 teacher keys.
# Weights as the COCO config (untuned). 50-iteration warm-up, as every synthetic
# distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_gdetkd=dict(
            type='GDetKDLoss',
            rois='gt',
            sgfi_weight=1.0,
            ckd_weight=0.5,
            ckd_feature='rcnn',
            ckd_channels=(256, 256),
            ckd_temperature=0.07,
            memory_size=256)),
    warmup_iters=50)
