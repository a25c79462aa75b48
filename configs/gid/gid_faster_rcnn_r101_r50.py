# GID (Dai et al., CVPR 2021): Faster R-CNN R101 2x (model zoo, 39.8) -> R50 2x, COCO 2017
# (review Table 1: 40.2). GISM on the RPN (objectness as the one-class score, decoded RPN
# anchors as boxes): 3000 candidates, NMS 0.3, K = 10 GIs per image, sides > 10 px. Features:
# P2-P5 RoIAlign 10 x 10 (sampling 2, aligned) on the GIs, each GI from its FPN level.
# Response: RPN objectness (BCE to the teacher's sigmoid) and deltas (L1) on the anchors the
# RPN's own assigner (IoU 0.7, low-quality 0.3) gives to the GIs. Weights: feature 5e-3,
# relation 40, response cls 0.1 / reg 0.1 = the defaults of the first author's released
# detectron2 code (gid/config.py; it implements RetinaNet only; the paper's own values were
# not readable here, see README). f_adapt: a 1x1 conv per FPN level (256 -> 256).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck', levels=[0, 1, 2, 3]),
        cls=dict(source='rpn_head', index=0),
        reg=dict(source='rpn_head', index=1)),
    distill_losses=dict(
        loss_gid=dict(
            type='GIDLoss',
            adapter=dict(kernel_size=1),
            head='rpn_head',
            gi_score='max_abs_diff',
            pre_nms_topk=3000,
            nms_iou=0.3,
            topk=10,
            min_size=10,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=10, sampling_ratio=2, aligned=True),
                out_channels=256,
                featmap_strides=[4, 8, 16, 32]),
            feature_weight=5e-3,
            relation_weight=40.0,
            response_cls_weight=0.1,
            response_reg_weight=0.1)),
    warmup_iters=0)
