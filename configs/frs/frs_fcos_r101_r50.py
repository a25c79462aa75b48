# FRS on FCOS (caffe-style R101 ms-2x, 40.8 -> R50 ms-2x), alpha 0.01, beta 0.05
# (authors' FCOS config).
_base_ = '../_base_/pairs/fcos_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.01),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.05)),
    warmup_iters=500)
