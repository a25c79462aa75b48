# TID on ATSS, COCO 1x: teacher ATSS R101 1x from the mmdet model zoo (41.5 mAP)
# -> student ATSS R50 1x (paper Table 1: 40.5 -> 41.5). ATSS's 3rd output
# (centerness) is not used: DIEM reads the classifier and the box deltas.
_base_ = '../_base_/pairs/atss_r101_r50_coco.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
