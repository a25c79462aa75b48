# Two teachers -> RetinaNet R50 2x on COCO 2017: RetinaNet R101 2x ('retina', model zoo, 38.9
# box AP) and GFL R101 ms-2x ('gfl', model zoo, 44.7). Both FPNs give P3-P7 with 256 channels, as
# the student's. Data, schedule and optimizer come from the student's mmdet config.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teachers=dict(
        retina=dict(
            model=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
            ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
            'retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'),
        gfl=dict(
            model=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
            ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/'
            'gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'
        )))
