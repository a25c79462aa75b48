# Structured KD on the embedded synthetic data: teacher RetinaNet R18-w48 ->
# student RetinaNet R18-w32 (the pair and schedule of the FRS / TID synthetic
# configs). One-stage hyper-parameters of the paper (section IV-A): alpha = gamma =
# 4e-4, beta = 2e-2, T = 0.5, all FPN levels, unchanged. Non-local keys are not
# sub-sampled: at 128 px the largest level is 16 x 16 (a 256 x 256 relation);
# the COCO configs use the authors' strides 8/4/2/2/2.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_skd=dict(
            type='SKDLoss', preset='paper_one_stage', nonlocal_cfg=dict(sub_sample=1,
                                                                        reduction=2))),
    warmup_iters=50)
