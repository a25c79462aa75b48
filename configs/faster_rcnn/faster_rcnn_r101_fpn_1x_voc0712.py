# Teacher for the VOC structured-KD variant: mmdet's VOC Faster R-CNN with a ResNet-101.
# Train it first: python tools/train.py configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
default_scope = 'mmkd_det'
# stop on a NaN/inf loss or weights before a checkpoint is written from them
default_hooks = dict(nonfinite_guard=dict(type='NonFiniteGuardHook'))
model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
