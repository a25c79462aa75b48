# GID on Pascal VOC 07+12 (20 classes), the review's setting (Table 3: R101 -> R50 FPN,
# 82.60 mAP): teacher = your Faster R-CNN R101 VOC model
# (configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py), student = mmdet's VOC Faster
# R-CNN R50 with its VOC schedule. The loss settings are those of gid_faster_rcnn_r101_r50.py
# (GISM on the RPN, K = 10, NMS 0.3; weights 5e-3 / 40 / 0.1 / 0.1 from the released code).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_voc.py'
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
