# MGD with the "inheriting strategy" its headline numbers use (mmrazor's config,
# the authors' init_student=True): the student's neck and head start from the
# teacher's weights. Report it separately from mgd_retina_r101_r50.py.
_base_ = './mgd_retina_r101_r50.py'
model = dict(inherit_from_teacher=('neck', 'bbox_head'))
