# TID on the Pascal VOC layout of the synthetic data: the model of
# tid_retina_r18w48_r18w32_synthetic.py on retinanet_r18w32_synthetic_voc.py's data.
# The teacher is the COCO-layout synthetic teacher (same images and classes).
_base_ = ['../retinanet/retinanet_r18w32_synthetic_voc.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='configs/retinanet/retinanet_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/retinanet_r18w48_synthetic/epoch_10.pth',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.005)),
    warmup_iters=50)
