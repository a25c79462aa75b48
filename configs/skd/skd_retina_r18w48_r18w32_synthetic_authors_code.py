# Structured KD ablation on the synthetic benchmark. The authors'-code variant
# (configs/skd/README.md): their one-stage weights and T, mean-of-softmax masks, L_AT on pooled
# features through adapters, dot-product non-local.
_base_ = './skd_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_skd=dict(preset='authors_code_one_stage')))
