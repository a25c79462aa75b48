# Label-free on COCO: RetinaNet R101 2x (38.9) -> R50 trained on the 123k unlabeled2017 images;
# the teacher's detections scoring >= 0.5 are the ground truth (labels='pseudo'), plus PKD on
# P3-P6 at mmrazor's RetinaNet weight. Not trained here (no GPU, no COCO).
_base_ = '../_base_/unlabelled/retina_r101_r50_coco.py'
model = dict(
    labels='pseudo',
    pseudo_labels=dict(score_thr=0.5),
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0)))
