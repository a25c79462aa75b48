# MGD (Yang et al., ECCV 2022): RetinaNet R101 2x (38.9) -> R50 2x on COCO 2017;
# alpha_mgd 2e-5, lambda_mgd 0.65 on all five FPN levels (mmrazor / the authors'
# RetinaNet setting). Without weight inheritance; with it: mgd_retina_r101_r50_inherit.py.
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)),
    warmup_iters=0)
