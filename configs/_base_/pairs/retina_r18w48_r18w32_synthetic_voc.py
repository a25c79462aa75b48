# The synthetic RetinaNet pair on the Pascal VOC layout of the same images: the student of
# retinanet_r18w32_synthetic_voc.py (VOCDataset, VOCMetric) and the COCO-layout synthetic
# teacher (same images and classes).
_base_ = ['../../retinanet/retinanet_r18w32_synthetic_voc.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::retinanet/retinanet_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/retinanet_r18w48_synthetic/epoch_10.pth')
