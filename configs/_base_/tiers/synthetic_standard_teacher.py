# The standard tier's teacher schedule: synthetic_standard.py's data, trained
# 24 epochs (9000 iterations of batch 8) instead of the student's 8, once, and
# reused by path by every distillation run of the tier.
_base_ = ['./synthetic_standard.py']
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
