# Structured KD: RetinaNet R101 2x (38.9) -> R50 on COCO 2017, 24 epochs with the
# decay at 18 and 22 (section IV-A) and the paper's one-stage hyper-parameters
# alpha = gamma = 4e-4, beta = 2e-2, T = 0.5. All five FPN levels (P3-P7).
# The authors'-code variant: loss_skd=dict(preset='authors_code_one_stage').
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_skd=dict(
            type='SKDLoss',
            preset='paper_one_stage',
            nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)))))
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[18, 22], gamma=0.1)
]
