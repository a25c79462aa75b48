# Pair on Pascal VOC 07+12 (20 classes): teacher = your Faster R-CNN R101 VOC model (train
# configs/faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py first), student = mmdet's VOC
# Faster R-CNN R50 with its data, schedule and VOC mAP evaluator.
_base_ = [
    'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py',
    '../distill_runtime.py',
]
default_scope = 'mmkd_det'
model = dict(
    _delete_=True,
    type='Distiller',
    student=dict(cfg_path='mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'),
    teacher=dict(cfg_path='mmkd_det::faster_rcnn/faster_rcnn_r101_fpn_1x_voc0712.py'),
    teacher_ckpt='work_dirs/faster_rcnn_r101_fpn_1x_voc0712/epoch_4.pth')
