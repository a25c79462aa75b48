# TID on the embedded synthetic data: teacher RetinaNet R18-w48 -> student
# RetinaNet R18-w32 (the pair and schedule of the FRS synthetic config, so the
# numbers sit next to the baseline and FRS). IoU thresholds come from
# RetinaNet's MaxIoUAssigner (0.5 / 0.4). loss_weight 0.005 = FRS's alpha:
# both normalise the channel-summed squared error by the mask sum.
# Train the teacher first (tools/demo.py does it):
#   python tools/train.py configs/retinanet/retinanet_r18w48_synthetic.py
_base_ = ['../retinanet/retinanet_r18w32_synthetic.py', '../_base_/distill_runtime.py']
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
