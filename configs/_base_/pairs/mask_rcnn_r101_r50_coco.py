# Pair: Mask R-CNN R101 2x (model zoo, 40.8 box / 36.6 mask AP) -> Mask R-CNN R50 2x on
# COCO 2017, with the student's mmdet data, bbox + segm evaluator and schedule.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/'
    'mask_rcnn_r101_fpn_2x_coco/'
    'mask_rcnn_r101_fpn_2x_coco_bbox_mAP-0.408__segm_mAP-0.366_20200505_071027-14b391c7.pth')
