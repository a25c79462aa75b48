# TID reading (configs/tid/README.md): Eq. 9's information decay as printed, on the literal Eq. 11
# low band.
_base_ = './tid_retina_r18w48_r18w32_synthetic_low_band_scaled.py'
model = dict(distill_losses=dict(loss_tid=dict(info_decay='as_printed')))
