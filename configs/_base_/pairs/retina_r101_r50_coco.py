# Pair: RetinaNet R101 2x (model zoo, 38.9 box AP) -> RetinaNet R50 2x on COCO 2017.
# Data, schedule and optimizer come from the student's mmdet config (8 GPUs x 2 images,
# SGD lr 0.01, 24 epochs). A method config adds recorders and distill_losses.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
    'retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
