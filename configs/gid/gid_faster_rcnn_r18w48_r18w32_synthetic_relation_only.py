# GID ablation on the synthetic Faster R-CNN pair: only the relation term (its weight as in
# gid_faster_rcnn_r18w48_r18w32_synthetic.py, the others 0; the loss then neither computes
# nor logs them). Same GISM (RPN, K = 10, NMS 0.3, min_size 2 px).
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
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
            topk=10,
            nms_iou=0.3,
            min_size=2,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=10, sampling_ratio=2, aligned=True),
                out_channels=96,
                featmap_strides=[4, 8, 16, 32]),
            feature_weight=0.0,
            relation_weight=40.0,
            response_cls_weight=0.0,
            response_reg_weight=0.0)),
    warmup_iters=50)
