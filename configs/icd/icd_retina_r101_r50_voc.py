# ICD on Pascal VOC 07+12 (review Table 3: RetinaNet R101 -> R50, 82.4 mAP@0.5): teacher =
# your RetinaNet R101 VOC model (configs/retinanet/retinanet_r101_fpn_1x_voc0712.py), student
# = mmdet's VOC RetinaNet R50. Same losses and weights as icd_retina_r101_r50.py (RM 4,
# PFI 1.5, the mmrazor draft's COCO values; no VOC-specific weights are known).
_base_ = '../_base_/pairs/retina_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_rm=dict(type='RankMimickingLoss', loss_weight=4.0),
        loss_pfi=dict(type='PFILoss', loss_weight=1.5)),
    warmup_iters=0)
