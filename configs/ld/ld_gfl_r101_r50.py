# LD (Zheng et al., CVPR 2022): GFL R101 ms-2x (44.7) -> GFL R50 1x on COCO 2017,
# the main LD term of mmdet's LD configs (T = 10, weight 0.25, student's ATSS
# positives); the student keeps its GFL losses (QFL, DFL, GIoU).
_base_ = '../_base_/pairs/gfl_r101_r50_coco.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0), reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_ld=dict(type='LDLoss', temperature=10.0, loss_weight=0.25)),
    warmup_iters=0)
