# Pair: GFL R101 ms-2x (model zoo, 44.7 box AP) -> GFL R50 1x on COCO 2017, with the
# student's mmdet data and 1x schedule.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/'
    'gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth')
