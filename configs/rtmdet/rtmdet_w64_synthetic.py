# Teacher on the embedded synthetic data: RTMDet with CSPNeXt at widen 0.25 and
# deepen 0.33 (twice the student's width, two CSP blocks per stage where it has one)
# and a 64-channel neck and head, trained twice as long as the student (10 epochs).
_base_ = ['./rtmdet_w32_synthetic.py']
model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.25),
    neck=dict(in_channels=[64, 128, 256], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
