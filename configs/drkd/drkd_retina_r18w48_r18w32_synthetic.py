# DRKD on the embedded synthetic RetinaNet pair: the loss settings of drkd_retina_r101_r50.py
# (untuned). The widths differ (64 vs 96): the adaptive 1x1 convs f map the student's relation
# features and its FPN maps (before RoIAlign) onto the teacher's width. 50-iteration warm-up,
# as every synthetic distillation config. The tiny RetinaNet has four FPN levels (strides 8-64):
# the instances are RoIAligned (7x7) over those.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_drkd=dict(
            type='DRKDLoss',
            pr_weight=1.0,
            ir_weight=1.0,
            ins_weight=1.0,
            normalize='elements',
            relation_topk=None,
            roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                out_channels=96,
                featmap_strides=[8, 16, 32, 64]),
            loss_weight=1.0,
            adapter='auto')),
    warmup_iters=50)
