# New-pair recipe (docs/new_pair_recipe.md), steps (b)-(d): distil the teacher into the
# student on your dataset with PKD, loss weight set by loss_calibration.
# - student: the student config's model (and its data, schedule and runtime, inherited);
# - teacher: your teacher's config and trained checkpoint (`<-`: replace with yours);
# - records: the FPN levels (print_records.py shows 4 levels, strides 8-64, on both sides;
#   96 teacher channels vs 64 student channels, hence adapter='auto');
# - PKD: Pearson correlation of normalised features, needs no ground truth and is
#   insensitive to feature magnitude, a safe first method for any pair of FPNs;
# - loss_calibration: the loss is scaled once, at iteration 100, so that its gradient on
#   the student equals the task loss's (share=1.0), measured over iterations 80-99; the
#   student trains on its task loss alone before that. loss_weight cancels out.
_base_ = ['./retinanet_r18w32_mydata.py', '../_base_/distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::recipe/retinanet_r18w48_mydata.py'),  # <- your config
    teacher_ckpt='work_dirs/retinanet_r18w48_mydata/epoch_10.pth',  # <- your checkpoint
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=1.0, adapter='auto')),
    loss_calibration=dict(share=1.0, window=20, at_iter=100))
