# TID ablation on GFL, synthetic benchmark. Table 3, localisation only: Score = Score_r.
_base_ = './tid_gfl_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(tasks=['reg'])))
