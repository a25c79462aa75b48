# TID (Task Integration Distillation, §3 of the paper) on GFL, COCO 1x: teacher
# GFL R101 ms-2x from the mmdet model zoo (44.7 mAP) -> student GFL R50 1x
# (paper Table 1: 40.0 -> 42.0). IoU thresholds: GFL's ATSSAssigner (per-GT
# adaptive, negative = 0.8 x positive). loss_weight 0.1 = FRS's alpha for GFL
# (both normalise by the mask sum); the paper gives no value and it was not
# tuned on COCO here. Options and their defaults: docs/tid.md.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/'
    'gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
