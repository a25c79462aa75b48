# SSIM-KD on the embedded synthetic RetinaNet pair: all neck levels, the paper's window and
# constants, loss_weight 4 (as the COCO configs; untuned). The widths differ (64 vs 96): a
# 1x1 adapter per level ('auto', the paper's phi). Levels smaller than the window's half
# use replicate instead of reflect padding. 50-iteration warm-up, as every synthetic
# distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_ssim=dict(type='SSIMKDLoss', loss_weight=4.0, adapter='auto')),
    warmup_iters=50)
