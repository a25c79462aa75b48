# The standard benchmark tier, as an overlay (tools/train.py CONFIG --overlay THIS):
# any config of the quick synthetic tier (RetinaNet / GFL on data/synthetic, 128 px,
# 5 epochs) becomes its standard-tier run: 3000 + 500 images of 192 px in
# data/synthetic_standard (python tools/misc/gen_synthetic.py --preset standard) and
# an 8-epoch schedule (3000 iterations of batch 8). Only data and schedule change;
# the detectors, losses and weights are the config's own. The teacher is trained
# with synthetic_standard_teacher.py instead and passed by path
# (--cfg-options model.teacher_ckpt=...); tools/analysis_tools/benchmark.py
# --preset standard does both. Results: docs/benchmark.md.
data_root = 'data/synthetic_standard/'
img_scale = (192, 192)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
