# Cross-family pair (one-stage -> another head family): RetinaNet X101-64x4d multi-scale 3x
# (model zoo, 41.6 box AP) -> GFL R50 1x (40.2 alone) on COCO 2017. Both FPNs are P3-P7
# (strides 8-128), 256 wide, with the same preprocessing, so neck records pair level by
# level; the heads differ (9 anchors x 80 classes vs 1 x 80 with a distribution
# regression), so head-output losses (KD, FRS cls, LD) do not apply (build-time error).
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
    'retinanet_x101_64x4d_fpn_mstrain_3x_coco/'
    'retinanet_x101_64x4d_fpn_mstrain_3x_coco_20210719_051838-022c2187.pth')
