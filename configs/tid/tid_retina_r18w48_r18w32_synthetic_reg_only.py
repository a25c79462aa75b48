# TID ablation on the synthetic benchmark. Table 3, regression only: Score = Score_r (Score_c
# taken as 1).
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(tasks=('reg', ))))
