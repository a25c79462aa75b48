# Pair: RTMDet-s (mmdet model zoo, 44.5 box AP) -> RTMDet-tiny (40.9) on COCO 2017, with
# the student's mmdet data, 300-epoch schedule and hooks (8 GPUs x 32 images, AdamW).
# mmyolo's published RTMDet distillation uses this teacher/student size pair.
# SyncBN: the runner turns the student's into BatchNorm when not distributed; the
# teacher's run in eval mode and are folded into its convolutions (fuse_teacher_bn).
# custom_hooks are written here in full: a second base could not define them too.
# They are ../distill_runtime.py's (checked by a test) and the student config's.
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v3.0/rtmdet/'
    'rtmdet_s_8xb32-300e_coco/rtmdet_s_8xb32-300e_coco_20220905_161602-387a891e.pth')
custom_hooks = [
    dict(type='TeacherEvalHook'),
    dict(type='DistillationScheduleHook'),
    dict(type='DistillDiagnosticsHook'),
    dict(type='NonFiniteGuardHook'),
    # the student config's: EMA over the whole Distiller (student + adapters; the
    # checkpoint keeps the student. prefix export_student.py strips), then the
    # no-mosaic pipeline for the last 20 epochs
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=280, switch_pipeline=_base_.train_pipeline_stage2)
]
