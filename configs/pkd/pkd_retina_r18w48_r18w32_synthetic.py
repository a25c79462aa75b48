# PKD on the embedded synthetic data (the RetinaNet pair of FRS/TID/SKD): all four
# levels (the pair has four), loss_weight 10 (mmrazor's RetinaNet value). The widths
# differ (96 vs 64): a 1x1 adapter per level ('auto'; not in the paper nor mmrazor).
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_pkd=dict(
        type='PKDLoss', loss_weight=10.0, adapter='auto')))
