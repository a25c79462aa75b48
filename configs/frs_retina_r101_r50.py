# The documented entry point (`python tools/train.py configs/frs_retina_r101_r50.py`):
# FRS on RetinaNet R101 -> R50, COCO. The method's configs live in configs/frs/.
_base_ = './frs/frs_retina_r101_r50.py'
