# Cross-family pair (transformer backbone, two-stage -> CNN one-stage): Mask R-CNN Swin-S
# multi-scale-crop 3x (model zoo, 48.2 box AP) -> RetinaNet R50 2x (37.4 alone) on COCO 2017,
# the PKD paper's and mmrazor's heterogeneous pair. The teacher's FPN (on Swin stages of
# 96-768 channels) has P2-P6 (strides 4-64), the student's P3-P7 (8-128); both are 256 wide
# with the same preprocessing. Only the teacher's backbone and neck run (no RoI or mask head).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/swin/'
    'mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco/'
    'mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco_20210903_104808-b92c91f1.pth')
