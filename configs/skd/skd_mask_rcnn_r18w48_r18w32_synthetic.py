# Structured KD for instance segmentation on the embedded synthetic data:
# Mask R-CNN R18-w48 -> R18-w32, all five FPN levels, the paper's two-stage
# hyper-parameters (alpha = gamma = 7e-5, beta = 4e-3, T = 0.1). The loss only
# reads features; the student trains boxes and masks and is evaluated on both.
# Non-local keys are not sub-sampled at 128 px (largest level 32 x 32).
_base_ = '../_base_/pairs/mask_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_skd=dict(
            type='SKDLoss', preset='paper_two_stage', nonlocal_cfg=dict(sub_sample=1,
                                                                        reduction=2))),
    warmup_iters=50)
