# Pair: YOLOX-s (mmdet model zoo, 40.5 box AP) -> YOLOX-tiny (32.0) on COCO 2017, with
# the student's mmdet data, 300-epoch schedule and hooks (8 GPUs x 8 images, SGD).
# The student's BatchSyncRandomResize (320-640 px every 10 iterations) runs once per
# batch and the teacher reuses that very tensor (both YOLOX preprocessors are the same
# apart from it), so both see the same geometry. custom_hooks are written in full (a
# second base could not define them too): ../distill_runtime.py's (checked by a test)
# and the student config's, YOLOXModeSwitchHook through StudentHook (it sets
# model.bbox_head.use_l1, which on a Distiller is model.student.bbox_head).
_base_ = 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py'
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::yolox/yolox_tiny_8xb8-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::yolox/yolox_s_8xb8-300e_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/yolox/'
    'yolox_s_8x8_300e_coco/yolox_s_8x8_300e_coco_20211121_095711-4592a793.pth')
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
