# CWD (Shu et al., ICCV 2021): RetinaNet R101 2x (38.9) -> R50 2x on COCO 2017;
# mmrazor's FPN setting: all five neck levels, tau 1, loss_weight 10. (mmrazor's own
# RetinaNet CWD config inherits a Faster R-CNN teacher_ckpt by mistake; here the
# teacher is RetinaNet's.)
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    warmup_iters=0)
