# FGD (Yang et al., CVPR 2022): RetinaNet R101 2x (38.9) -> R50 2x on COCO 2017,
# the authors' RetinaNet hyper-parameters (T 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4,
# lambda 5e-6) on P3-P7 and their gradient clipping (35). GT boxes are scaled to
# the feature grid by batch_input_shape (the original's img_shape stretch is
# box_scale='img_shape'). Without weight inheritance; with it:
# fgd_retina_r101_r50_inherit.py.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='retinanet')),
    warmup_iters=0)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
