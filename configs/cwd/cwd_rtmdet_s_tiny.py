# CWD on a deployment student, mmyolo's published RTMDet distillation setting:
# RTMDet-s (44.5) -> RTMDet-tiny (40.9) on COCO 2017 (mmdet model zoo). Per neck level (strides
# 8/16/32) the output conv of CSPNeXtPAFPN before its BN (mmyolo's
# neck.out_layers.<i>.conv is mmdet's neck.out_convs.<i>.conv), CWD tau 1, loss_weight 1,
# a 1x1 adapter (96 -> 128 channels); distillation stops at epoch 280 (the last 20
# no-mosaic epochs train the student alone). The teacher's BN is not folded
# (fuse_teacher_bn=False): folding would move it into the recorded conv. One difference
# remains: mmyolo standardises both sides per channel (BN without affine) before CWD;
# CWDLoss has no such option (see README).
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
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn0', t_feats='teacher.fpn0')),
        loss_cwd_fpn1=dict(
            type='CWDLoss',
            tau=1.0,
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn1', t_feats='teacher.fpn1')),
        loss_cwd_fpn2=dict(
            type='CWDLoss',
            tau=1.0,
            loss_weight=1.0,
            inputs=dict(s_feats='student.fpn2', t_feats='teacher.fpn2'))),
    fuse_teacher_bn=False,
    warmup_iters=0,
    stop_epoch=280)
