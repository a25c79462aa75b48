# TID reading (configs/tid/README.md): a monotonic low band ('floor': max(0.7 V, 0.05) below the
# high band) instead of the default 'constant'.
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(low_band='floor')))
