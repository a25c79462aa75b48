# A small Faster R-CNN for the embedded synthetic data (128 px images, CPU):
# ResNet-18 with 32 base channels, 64-channel FPN P2-P6, a 64-channel RPN and a
# light two-fc R-CNN head (256 units), 6 classes. Anchors are 4 x stride (16-256 px;
# the objects are 12-110 px). RoIAlign samples 2 x 2 points per bin (mmcv's CPU
# backward dominates the step otherwise). As configs/_base_/models/mask_rcnn_tiny.py
# without the mask branch.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
model = dict(
    backbone=dict(depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=6)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
