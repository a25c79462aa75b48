# Structured KD for instance segmentation: Mask R-CNN R101 2x (box 40.8 / mask
# 36.6) -> R50 on COCO 2017; data and the bbox + segm evaluator come from
# mmdet's Mask R-CNN config. The loss reads FPN features only; the student keeps
# its box and mask losses. Two-stage hyper-parameters and the §IV-A schedule
# (24 epochs, decay at 18 and 22), as skd_faster_rcnn_r101_r50.py.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/'
    'mask_rcnn_r101_fpn_2x_coco/'
    'mask_rcnn_r101_fpn_2x_coco_bbox_mAP-0.408__segm_mAP-0.366_20200505_071027-14b391c7.pth',
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_skd=dict(
        type='SKDLoss', preset='paper_two_stage',
        nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)))))
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[18, 22],
         gamma=0.1)
]
