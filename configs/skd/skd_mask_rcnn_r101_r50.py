# Structured KD for instance segmentation: Mask R-CNN R101 2x (box 40.8 / mask
# 36.6) -> R50 on COCO 2017; data and the bbox + segm evaluator come from
# mmdet's Mask R-CNN config. The loss reads FPN features only; the student keeps
# its box and mask losses. Two-stage hyper-parameters and the section IV-A schedule
# (24 epochs, decay at 18 and 22), as skd_faster_rcnn_r101_r50.py.
_base_ = '../_base_/pairs/mask_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_skd=dict(
            type='SKDLoss',
            preset='paper_two_stage',
            nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)))))
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[18, 22], gamma=0.1)
]
