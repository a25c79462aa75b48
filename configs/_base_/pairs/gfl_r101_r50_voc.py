# Pair on Pascal VOC 07+12 (20 classes): teacher = your GFL R101 VOC model (train
# configs/gfl/gfl_r101_fpn_1x_voc0712.py first), student = the same GFL with an ImageNet
# ResNet-50. Data, schedule and VOC mAP evaluator come from the teacher's config.
_base_ = ['../../gfl/gfl_r101_fpn_1x_voc0712.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(
        cfg_path='mmkd_det::gfl/gfl_r101_fpn_1x_voc0712.py',
        backbone=dict(
            depth=50, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))),
    teacher=dict(cfg_path='mmkd_det::gfl/gfl_r101_fpn_1x_voc0712.py'),
    teacher_ckpt='work_dirs/gfl_r101_fpn_1x_voc0712/epoch_4.pth')
