# FitNet hints (Romero et al., ICLR 2015) on FPN levels: RetinaNet R101 2x (38.9)
# -> R50 2x on COCO 2017. 1x1 adapter per level, MSE averaged over elements and
# summed over the five levels; loss_weight 1 (no reference detection config; not tuned).
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fitnet=dict(type='FitNetLoss', loss_weight=1.0)),
    warmup_iters=0)
