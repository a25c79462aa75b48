# New-pair recipe (docs/new_pair_recipe.md), step (a): the TEACHER detector on your dataset,
# the config your teacher checkpoint was trained with. Here: the student's config with a
# wider network (ResNet-18 with 48 base channels, 96-channel FPN/head) and twice its
# schedule. Your teacher may be any mmdet detector (another backbone, neck or head); it
# needs the same classes as the student.
_base_ = ['./retinanet_r18w32_mydata.py']
model = dict(
    backbone=dict(base_channels=48),
    neck=dict(in_channels=[96, 192, 384], out_channels=96),
    bbox_head=dict(in_channels=96, feat_channels=96))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
