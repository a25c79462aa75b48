# TID reading (configs/tid/README.md): Eq. 9's information decay as printed, on the default
# low band ('constant').
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(info_decay='as_printed')))
