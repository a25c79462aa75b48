# TID on Pascal VOC 07+12 (paper Table 2): teacher = your GFL R101 VOC model
# (configs/gfl/gfl_r101_fpn_1x_voc0712.py), student = the same GFL with a ResNet-50.
# Data, schedule and evaluation (VOC mAP) come from the teacher config.
_base_ = ['../gfl/gfl_r101_fpn_1x_voc0712.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(
        cfg_path='configs/gfl/gfl_r101_fpn_1x_voc0712.py',
        backbone=dict(depth=50, init_cfg=dict(type='Pretrained',
                                              checkpoint='torchvision://resnet50'))),
    teacher=dict(cfg_path='configs/gfl/gfl_r101_fpn_1x_voc0712.py'),
    teacher_ckpt='work_dirs/gfl_r101_fpn_1x_voc0712/epoch_4.pth',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
