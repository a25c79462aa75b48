# Structured KD ablation on the synthetic benchmark. Table VII, non-local distillation L_NLD only
# (alpha = beta = 0).
_base_ = './skd_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_skd=dict(alpha=0, beta=0)))
