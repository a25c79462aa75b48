# FRS on Pascal VOC 07+12 (20 classes): teacher = your RetinaNet R101 VOC model
# (configs/retinanet/retinanet_r101_fpn_1x_voc0712.py), student = mmdet's VOC RetinaNet R50.
# Shows the inheritance pattern: num_classes is overridden for both detectors.
_base_ = [
    'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py',
    '../_base_/distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'),
    teacher=dict(cfg_path='configs/retinanet/retinanet_r101_fpn_1x_voc0712.py'),
    teacher_ckpt='work_dirs/retinanet_r101_fpn_1x_voc0712/epoch_4.pth',
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=500)
