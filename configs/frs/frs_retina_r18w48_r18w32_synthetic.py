# FRS on the embedded synthetic data: teacher RetinaNet R18-w48 -> student
# RetinaNet R18-w32, on the student's schedule. The FPN widths differ (96 vs
# 64): FRS's per-level 3x3 adapter maps student to teacher channels.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=50)
