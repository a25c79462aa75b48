# Logit KD on RetinaNet's classification logits on the embedded synthetic data
# (the RetinaNet pair of FRS/TID/SKD): 6 classes x 9 anchors, T = 1, weight 1.
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(_delete_=True, loss_kd=dict(
        type='LogitKDLoss', temperature=1.0, channels_per_prior=6, loss_weight=1.0)))
