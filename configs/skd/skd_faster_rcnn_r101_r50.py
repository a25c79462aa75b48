# Structured KD (Zhang & Ma, §III-C): Faster R-CNN R101 2x (39.8) -> R50 on COCO
# 2017. §IV-A: 24 epochs, learning rate decayed at epochs 18 and 22 (mmdet's 2x
# decays at 16 and 22), two-stage hyper-parameters alpha = gamma = 7e-5,
# beta = 4e-3, T = 0.1. All five FPN levels (P2-P6), as the authors' code; the
# paper's Fig. 2(d) distils backbone stages instead: skd_faster_rcnn_r101_r50_backbone.py.
# Non-local keys/values max-pooled by 8/4/2/2/2 per level (docs/skd.md: memory).
# The authors'-code variant: loss_skd=dict(preset='authors_code_two_stage').
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r101_fpn_2x_coco/'
    'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth',
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
