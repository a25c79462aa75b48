# MGD with the inheriting strategy on the synthetic pair: the student's
# bbox_head starts from the teacher's weights (equal widths); its neck cannot
# (different backbone channels). Compare with the config without _inherit.
_base_ = ['./mgd_retina_r18w48_r18w32fpn96_synthetic.py']
model = dict(inherit_from_teacher=('bbox_head', ))
