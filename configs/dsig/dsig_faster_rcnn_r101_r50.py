# DSIG (Chen et al., ICCV 2021): Faster R-CNN R101 2x (39.8) -> R50 2x on COCO 2017.
# Structured instance graph on the student's sampled R-CNN RoIs (positives and negatives),
# P2-P5 pooled by each detector's own RoIAlign extractor. Weights of the authors' COCO
# R50 <- R101 config (dvlab-research/Dsig, Distillation-FasterRCNN-R50-R101-dsig-1x.yaml):
# foreground nodes 0.5, background nodes 0.5 with the adaptive weight alpha = 7.5, edges 1.0
# over positives + mined background RoIs (teacher CE vs background >= 0.6); per-image terms
# summed over the images of a GPU (2 per GPU, as the authors). Equal widths: no adapter.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_dsig=dict(
            type='DSIGLoss',
            fg_weight=0.5,
            bg_weight=0.5,
            edge_weight=1.0,
            bg_alpha=7.5,
            edge_bg='mined',
            mining_thr=0.6,
            image_reduction='sum',
            loss_weight=1.0)),
    warmup_iters=0)
