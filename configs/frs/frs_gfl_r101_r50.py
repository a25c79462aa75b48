# FRS on GFL: teacher GFL R101 ms-2x (44.7) -> GFL R50 1x, alpha 0.1, beta 0.05
# (authors' GFL config). GFL's cls branch is the joint quality-class score.
_base_ = '../_base_/pairs/gfl_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.1),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.05)),
    warmup_iters=500)
