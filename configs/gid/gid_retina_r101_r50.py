# GID on RetinaNet R101 2x (model zoo, 38.9) -> R50 2x, COCO 2017 (paper abstract: 39.1 from
# 36.2 with its own 38.1 teacher). GISM on the head's 80-class sigmoid scores (the paper's
# GI score, max over classes of |P_t - P_s|; 'abs_max_diff' is the released code's) with
# the decoded anchors: 3000 candidates, NMS 0.3, K = 10, sides > 10 px. Features: P3-P7
# RoIAlign 10 x 10 (sampling 2, aligned), a GI of side s from level floor(log2(s / 112))
# (detectron2's mapping, canonical 224 px at P4). Response: the anchors RetinaNet's own
# assigner (IoU 0.5, low-quality matches) gives to the GIs; classification BCE to the
# teacher's sigmoid, deltas L1. Weights: feature 5e-4, relation 40, response cls 0.1 / reg
# 1.0 = the released code's RetinaNet R101 -> R50 2x experiment
# (Distill_RetinaNet_T_Res101_S_Res50_2x.yaml; the paper's values were not readable here).
# f_adapt: a 1x1 conv per FPN level (256 -> 256).
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(
        loss_gid=dict(
            type='GIDLoss',
            adapter=dict(kernel_size=1),
            head='bbox_head',
            gi_score='max_abs_diff',
            pre_nms_topk=3000,
            nms_iou=0.3,
            topk=10,
            min_size=10,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=10, sampling_ratio=2, aligned=True),
                out_channels=256,
                featmap_strides=[8, 16, 32, 64, 128],
                finest_scale=112),
            feature_weight=5e-4,
            relation_weight=40.0,
            response_cls_weight=0.1,
            response_reg_weight=1.0)),
    warmup_iters=0)
