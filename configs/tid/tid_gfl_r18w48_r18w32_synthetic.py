# TID on the paper's detector, GFL, on the embedded synthetic data: teacher
# GFL R18-w48 -> student GFL R18-w32. IoU thresholds from GFL's ATSSAssigner
# (per-GT mean + std; negative = 0.8 x positive). loss_weight 0.1 = FRS's
# alpha for GFL (same normalisation). Train the teacher first:
#   python tools/train.py configs/gfl/gfl_r18w48_synthetic.py
_base_ = ['../gfl/gfl_r18w32_synthetic.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='configs/gfl/gfl_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/gfl_r18w48_synthetic/epoch_10.pth',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=50)
