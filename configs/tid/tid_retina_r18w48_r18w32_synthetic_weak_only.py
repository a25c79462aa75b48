# TID ablation on the synthetic benchmark. Table 5, weak areas only: Value_output = Score_weak
# (Score_key taken as 1).
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(areas=('weak', ))))
