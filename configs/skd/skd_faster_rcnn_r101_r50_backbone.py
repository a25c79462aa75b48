# Structured KD on backbone stages C2-C5 instead of FPN levels, as drawn in the
# paper's Fig. 2(d) ("distillation loss is applied to backbone features"). R101
# and R50 stages have equal widths (256-2048), so the adapters are plain 1x1.
_base_ = './skd_faster_rcnn_r101_r50.py'
model = dict(
    recorders=dict(fpn=dict(source='backbone')),
    distill_losses=dict(
        loss_skd=dict(nonlocal_cfg=dict(sub_sample=(8, 4, 2, 2), reduction=(4, 4, 4, 8)))))
