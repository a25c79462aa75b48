# TID on ATSS, COCO 1x: teacher ATSS R101 1x from the mmdet model zoo (41.5 mAP)
# -> student ATSS R50 1x (paper Table 1: 40.5 -> 41.5). ATSS's 3rd output
# (centerness) is not used: DIEM reads the classifier and the box deltas.
_base_ = [
    'mmdet::atss/atss_r50_fpn_1x_coco.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::atss/atss_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::atss/atss_r101_fpn_1x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/atss/'
    'atss_r101_fpn_1x_coco/atss_r101_fpn_1x_20200825-dfcadd6f.pth',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
