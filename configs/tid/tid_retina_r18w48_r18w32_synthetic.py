# TID on the embedded synthetic data: teacher RetinaNet R18-w48 -> student
# RetinaNet R18-w32 (the pair and schedule of the FRS synthetic config, so the
# numbers sit next to the baseline and FRS). IoU thresholds come from
# RetinaNet's MaxIoUAssigner (0.5 / 0.4). loss_weight 0.005 = FRS's alpha:
# both normalise the channel-summed squared error by the mask sum.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.005)),
    warmup_iters=50)
