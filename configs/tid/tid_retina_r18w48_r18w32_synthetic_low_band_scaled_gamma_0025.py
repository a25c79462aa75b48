# TID reading (configs/tid/README.md): gamma = 0.025, on the literal Eq. 11 low band.
_base_ = './tid_retina_r18w48_r18w32_synthetic_low_band_scaled.py'
model = dict(distill_losses=dict(loss_tid=dict(gamma=0.025)))
