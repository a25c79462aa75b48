# FRS (Du et al., NeurIPS 2021): RetinaNet R101 2x (38.9) -> RetinaNet R50 2x on COCO 2017.
# alpha (FPN, Eq. 6) = 0.005, beta (cls head, Eq. 7) = 0.02, 500-iteration warm-up,
# as the authors' config (reference_impls.md §1.3). Schedule, optimizer and data come
# from the student's mmdet config (8 GPUs x 2 images, SGD lr 0.01, 24 epochs).
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
    recorders=dict(
        fpn=dict(source='neck'),                 # P3-P7 neck outputs
        cls=dict(source='bbox_head', index=0)),  # head forward -> cls logits per level
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=500)
