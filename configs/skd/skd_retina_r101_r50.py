# Structured KD: RetinaNet R101 2x (38.9) -> R50 on COCO 2017, 24 epochs with the
# decay at 18 and 22 (§IV-A) and the paper's one-stage hyper-parameters
# alpha = gamma = 4e-4, beta = 2e-2, T = 0.5. All five FPN levels (P3-P7).
# The authors'-code variant: loss_skd=dict(preset='authors_code_one_stage').
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
    'retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth',
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_skd=dict(
        type='SKDLoss', preset='paper_one_stage',
        nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)))))
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[18, 22],
         gamma=0.1)
]
