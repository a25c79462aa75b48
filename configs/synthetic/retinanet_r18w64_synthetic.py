# Teacher on the embedded synthetic data: RetinaNet, ResNet-18 with 64 base
# channels (the standard width), 128-channel FPN and a 4-conv head, trained
# twice as long as the student.
_base_ = ['./retinanet_r18w32_synthetic.py']
model = dict(
    backbone=dict(base_channels=64),
    neck=dict(in_channels=[128, 256, 512], out_channels=128),
    bbox_head=dict(in_channels=128, feat_channels=128, stacked_convs=4))
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
