# PKD between one-stage head families: RetinaNet X101-64x4d ms-3x (41.6) -> GFL R50 1x
# (40.2 alone) on COCO 2017. Both necks are P3-P7 and 256 wide: the first four levels
# (P3-P6) as every mmrazor PKD config, paired level by level; loss_weight 10, mmrazor's
# value for one-stage teachers. The GFL student keeps its own 1x schedule.
_base_ = '../_base_/pairs/retina_x101_gfl_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0)),
    warmup_iters=0)
