# TID reading (configs/tid/README.md): the literal Eq. 11 low band ('scaled') instead of the default
# 'constant'. The other readings change one thing each from this one.
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(low_band='scaled')))
