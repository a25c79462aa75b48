# CWD on a deployment student, mmyolo's published RTMDet distillation setting:
# RTMDet-s (44.5) -> RTMDet-tiny (40.9) on COCO 2017 (mmdet model zoo). Per neck level (strides
# 8/16/32) the output conv of CSPNeXtPAFPN before its BN (mmyolo's
# neck.out_layers.<i>.conv is mmdet's neck.out_convs.<i>.conv), CWD tau 1, loss_weight 1,
# a 1x1 adapter (96 -> 128 channels); distillation stops at epoch 280 (the last 20
# no-mosaic epochs train the student alone). Both sides are standardised per channel
# before the loss (standardise=True: mmyolo's BN without affine). The teacher's BN after a
# recorded conv is not folded into it (the Distiller keeps recorded convs unfused).
_base_ = '../_base_/pairs/rtmdet_s_tiny_coco.py'
model = dict(
    recorders=dict(
        fpn0=dict(source='neck.out_convs.0.conv'),
        fpn1=dict(source='neck.out_convs.1.conv'),
        fpn2=dict(source='neck.out_convs.2.conv')),
    distill_losses=dict(
        loss_cwd_fpn0=dict(
            type='CWDLoss',
            tau=1.0,
            standardise=True,
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn0', t_feats='teacher.fpn0')),
        loss_cwd_fpn1=dict(
            type='CWDLoss',
            tau=1.0,
            standardise=True,
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn1', t_feats='teacher.fpn1')),
        loss_cwd_fpn2=dict(
            type='CWDLoss',
            tau=1.0,
            standardise=True,
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn2', t_feats='teacher.fpn2'))),
    warmup_iters=0,
    stop_epoch=280)
