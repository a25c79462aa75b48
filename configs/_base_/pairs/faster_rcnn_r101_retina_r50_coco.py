# Cross-family pair (two-stage -> one-stage): Faster R-CNN R101 2x (model zoo, 39.8 box AP)
# -> RetinaNet R50 2x on COCO 2017. The teacher's FPN has P2-P6 (strides 4-64, 5 levels),
# the student's P3-P7 (strides 8-128): a method config pairs the common strides with the
# recorder's `levels` / `teacher_levels` (docs/cross_family.md). Both FPNs are 256 wide
# and share the preprocessing. Data, schedule and optimizer are the student's mmdet config.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r101_fpn_2x_coco/'
    'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth')
