# Structured KD for instance segmentation on the embedded synthetic data:
# Mask R-CNN R18-w48 -> R18-w32, all five FPN levels, the paper's two-stage
# hyper-parameters (alpha = gamma = 7e-5, beta = 4e-3, T = 0.1). The loss only
# reads features; the student trains boxes and masks and is evaluated on both.
# Non-local keys are not sub-sampled at 128 px (largest level 32 x 32).
# Train the teacher first:
#   python tools/train.py configs/mask_rcnn/mask_rcnn_r18w48_synthetic.py
_base_ = ['../mask_rcnn/mask_rcnn_r18w32_synthetic.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='configs/mask_rcnn/mask_rcnn_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/mask_rcnn_r18w48_synthetic/epoch_10.pth',
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_skd=dict(
        type='SKDLoss', preset='paper_two_stage',
        nonlocal_cfg=dict(sub_sample=1, reduction=2))),
    warmup_iters=50)
