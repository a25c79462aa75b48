# TID on the paper's detector, GFL, on the embedded synthetic data: teacher
# GFL R18-w48 -> student GFL R18-w32. IoU thresholds from GFL's ATSSAssigner
# (per-GT mean + std; negative = 0.8 x positive). loss_weight 0.1 = FRS's
# alpha for GFL (same normalisation).
_base_ = '../_base_/pairs/gfl_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=50)
