# Teacher on the embedded synthetic data: Faster R-CNN, ResNet-18 with 48 base
# channels and a 96-channel FPN, RPN and RoI extractor, trained 10 epochs (student: 5).
_base_ = ['./faster_rcnn_r18w32_synthetic.py']
model = dict(
    backbone=dict(base_channels=48),
    neck=dict(in_channels=[48, 96, 192, 384], out_channels=96),
    rpn_head=dict(in_channels=96, feat_channels=96),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=96), bbox_head=dict(in_channels=96)))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
