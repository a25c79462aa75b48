# FGD on the synthetic pair with a student of the teacher's FPN/head width
# (retinanet_r18w32_fpn96_synthetic.py), without weight inheritance: the
# baseline of fgd_retina_r18w48_r18w32fpn96_synthetic_inherit.py. Equal FPN
# widths: no adapter.
_base_ = ['./fgd_retina_r18w48_r18w32_synthetic.py']
model = dict(
    student=dict(neck=dict(out_channels=96), bbox_head=dict(in_channels=96, feat_channels=96)))
