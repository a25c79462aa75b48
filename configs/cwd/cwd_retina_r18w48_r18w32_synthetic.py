# CWD on the embedded synthetic data (RetinaNet pair): tau 1, loss_weight 10
# (mmrazor's FPN setting); a 1x1 adapter maps the student's 64 channels to 96.
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_cwd=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)))
