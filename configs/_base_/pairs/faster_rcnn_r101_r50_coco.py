# Pair: Faster R-CNN R101 2x (model zoo, 39.8 box AP) -> Faster R-CNN R50 2x on COCO 2017,
# with the student's mmdet data and schedule. A method config adds recorders and losses.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r101_fpn_2x_coco/'
    'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth')
