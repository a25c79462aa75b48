# FGD with the inheriting strategy of its headline numbers (init_student=True):
# the student's neck and head start from the teacher's. Report separately.
_base_ = './fgd_retina_r101_r50.py'
model = dict(inherit_from_teacher=('neck', 'bbox_head'))
