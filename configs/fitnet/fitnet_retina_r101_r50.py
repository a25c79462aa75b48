# FitNet hints (Romero et al., ICLR 2015) on FPN levels: RetinaNet R101 2x (38.9)
# -> R50 2x on COCO 2017. 1x1 adapter per level, MSE averaged over elements and
# summed over the five levels; loss_weight 1 (no reference detection config; not tuned).
_base_ = '../frs/frs_retina_r101_r50.py'
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_fitnet=dict(type='FitNetLoss', loss_weight=1.0)),
    warmup_iters=0)
