# Pair: YOLOX-l (mmdet model zoo, 49.4 box AP) -> YOLOX-s (40.5) on COCO 2017, with the
# student's mmdet data, 300-epoch schedule and hooks (8 GPUs x 8 images, SGD). Batch
# resizing and custom_hooks: as yolox_s_tiny_coco.py.
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::yolox/yolox_s_8xb8-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::yolox/yolox_l_8xb8-300e_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/yolox/'
    'yolox_l_8x8_300e_coco/yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth')
custom_hooks = [
    dict(type='TeacherEvalHook'),
    dict(type='DistillationScheduleHook'),
    dict(type='DistillDiagnosticsHook'),
    dict(type='NonFiniteGuardHook'),
    dict(
        type='StudentHook', hook=dict(type='YOLOXModeSwitchHook', num_last_epochs=15, priority=48)),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49)
]
