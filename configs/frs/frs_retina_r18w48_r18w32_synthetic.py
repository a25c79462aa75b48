# FRS on the embedded synthetic data: teacher RetinaNet R18-w48 -> student
# RetinaNet R18-w32, on the student's schedule. The FPN widths differ (96 vs
# 64): FRS's per-level 3x3 adapter maps student to teacher channels.
# Train the teacher first (tools/demo.py does it all):
#   python tools/train.py configs/retinanet/retinanet_r18w48_synthetic.py
_base_ = ['../retinanet/retinanet_r18w32_synthetic.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='configs/retinanet/retinanet_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/retinanet_r18w48_synthetic/epoch_10.pth',
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=50)
