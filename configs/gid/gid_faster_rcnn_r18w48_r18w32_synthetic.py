# GID on the embedded synthetic Faster R-CNN pair (R18-w48, 96 channels -> R18-w32, 64):
# GISM on the RPN, K = 10 GIs per image, NMS 0.3; the COCO weights (feature 5e-3, relation
# 40, response 0.1 / 0.1; untuned here). min_size 2 px: the COCO 10 px at 800 px scaled to
# the 128 px images. f_adapt: a 1x1 conv per level (64 -> 96), for the feature and the
# relation terms. 50-iteration warm-up, as every
# synthetic distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck', levels=[0, 1, 2, 3]),
        cls=dict(source='rpn_head', index=0),
        reg=dict(source='rpn_head', index=1)),
    distill_losses=dict(
        loss_gid=dict(
            type='GIDLoss',
            head='rpn_head',
            topk=10,
            nms_iou=0.3,
            min_size=2,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=10, sampling_ratio=2, aligned=True),
                out_channels=96,
                featmap_strides=[4, 8, 16, 32]),
            feature_weight=5e-3,
            relation_weight=40.0,
            response_cls_weight=0.1,
            response_reg_weight=0.1,
            adapter=dict(kernel_size=1))),
    warmup_iters=50)
