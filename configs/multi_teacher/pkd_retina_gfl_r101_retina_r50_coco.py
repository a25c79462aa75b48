# PKD from two COCO teachers, RetinaNet R101 2x (38.9) and GFL R101 ms-2x (44.7), into RetinaNet
# R50 2x: one PKD loss per teacher on P3-P6 (mmrazor's RetinaNet PKD levels), each at half of
# mmrazor's RetinaNet PKD weight (10). Not trained here (no GPU, no COCO).
_base_ = '../_base_/pairs/retina_gfl_r101_retina_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_pkd_retina=dict(type='PKDLoss', loss_weight=5.0, inputs=dict(t_feats='retina.fpn')),
        loss_pkd_gfl=dict(type='PKDLoss', loss_weight=5.0, inputs=dict(t_feats='gfl.fpn'))))
