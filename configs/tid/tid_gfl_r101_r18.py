# TID on GFL, COCO 1x: teacher GFL R101 ms-2x (model zoo) -> student GFL R18
# (paper Table 1: 28.2 -> 29.4). mmdet has no GFL R18 config: the R50 config
# with a ResNet-18 backbone (ImageNet weights) and matching FPN inputs.
_base_ = './tid_gfl_r101_r50.py'
model = dict(
    student=dict(
        backbone=dict(
            depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])))
