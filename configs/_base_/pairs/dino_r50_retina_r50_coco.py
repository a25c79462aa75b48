# Cross-family pair (DETR family -> CNN one-stage): DINO-4scale R50 12e (model zoo, 49.0 box AP)
# -> RetinaNet R50 2x (37.4 alone) on COCO 2017. Only DINO's backbone and neck run for the
# losses: its ChannelMapper gives 4 levels of 256 channels at strides 8-64 (the student's FPN
# 5 levels at 8-128). DINO pads batches to a multiple of 1, the student to 32: the teacher pads
# like the student here, so both see the same tensor (DINO's transformer, which masks the
# padding, does not run).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
        data_preprocessor=dict(pad_size_divisor=32)),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v3.0/dino/'
    'dino-4scale_r50_8xb2-12e_coco/dino-4scale_r50_8xb2-12e_coco_20221202_182705-55b2bba2.pth')
