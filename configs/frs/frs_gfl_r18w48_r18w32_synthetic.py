# FRS on GFL on the embedded synthetic data (the baseline next to TID's GFL
# variant): alpha 0.1, beta 0.05, the FRS authors' GFL weights.
_base_ = '../_base_/pairs/gfl_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.1),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.05)),
    warmup_iters=50)
