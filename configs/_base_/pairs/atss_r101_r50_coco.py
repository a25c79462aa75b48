# Pair: ATSS R101 1x (model zoo, 41.5 box AP) -> ATSS R50 1x on COCO 2017, with the
# student's mmdet data and 1x schedule.
_base_ = [
    'mmdet::atss/atss_r50_fpn_1x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::atss/atss_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::atss/atss_r101_fpn_1x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/atss/'
    'atss_r101_fpn_1x_coco/atss_r101_fpn_1x_20200825-dfcadd6f.pth')
