# Structured KD (Zhang & Ma, section III-C): Faster R-CNN R101 2x (39.8) -> R50 on COCO
# 2017. Section IV-A: 24 epochs, learning rate decayed at epochs 18 and 22 (mmdet's 2x
# decays at 16 and 22), two-stage hyper-parameters alpha = gamma = 7e-5,
# beta = 4e-3, T = 0.1. All five FPN levels (P2-P6), as the authors' code; the
# paper's Fig. 2(d) distils backbone stages instead: skd_faster_rcnn_r101_r50_backbone.py.
# Non-local keys/values max-pooled by 8/4/2/2/2 per level (README: memory).
# The authors'-code variant: loss_skd=dict(preset='authors_code_two_stage').
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
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
