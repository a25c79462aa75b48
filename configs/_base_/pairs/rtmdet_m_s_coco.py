# Pair: RTMDet-m (mmdet model zoo, 49.1 box AP) -> RTMDet-s (44.5) on COCO 2017, with
# the student's mmdet data, 300-epoch schedule and hooks (8 GPUs x 32 images, AdamW).
# mmyolo's published RTMDet distillation uses this teacher/student size pair. SyncBN and
# custom_hooks: as rtmdet_s_tiny_coco.py.
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::rtmdet/rtmdet_m_8xb32-300e_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v3.0/rtmdet/'
    'rtmdet_m_8xb32-300e_coco/rtmdet_m_8xb32-300e_coco_20220719_112220-229f527c.pth')
custom_hooks = [
    dict(type='TeacherEvalHook'),
    dict(type='DistillationScheduleHook'),
    dict(type='DistillDiagnosticsHook'),
    dict(type='NonFiniteGuardHook'),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=280, switch_pipeline=_base_.train_pipeline_stage2)
]
