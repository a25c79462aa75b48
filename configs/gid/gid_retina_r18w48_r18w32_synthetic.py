# GID on the embedded synthetic RetinaNet pair (R18-w48, 96-channel FPN/head -> R18-w32, 64):
# the settings of gid_retina_r101_r50.py (weights untuned here), min_size 2 px (10 px at
# 800 px scaled to the 128 px images), f_adapt a 1x1 conv per level (64 -> 96).
# 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(
        loss_gid=dict(
            type='GIDLoss',
            head='bbox_head',
            topk=10,
            nms_iou=0.3,
            min_size=2,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=10, sampling_ratio=2, aligned=True),
                out_channels=96,
                featmap_strides=[8, 16, 32, 64],
                finest_scale=112),
            feature_weight=5e-4,
            relation_weight=40.0,
            response_cls_weight=0.1,
            response_reg_weight=1.0,
            adapter=dict(kernel_size=1))),
    warmup_iters=50)
