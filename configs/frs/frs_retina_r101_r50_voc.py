# FRS on Pascal VOC 07+12 (20 classes): teacher = your RetinaNet R101 VOC model
# (configs/retinanet/retinanet_r101_fpn_1x_voc0712.py), student = mmdet's VOC RetinaNet R50.
# The weights of the COCO RetinaNet config.
_base_ = '../_base_/pairs/retina_r101_r50_voc.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
        loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
    warmup_iters=500)
