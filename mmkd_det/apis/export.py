"""Turn a Distiller checkpoint into a plain mmdet checkpoint of the student."""
from collections import OrderedDict

import torch


def student_checkpoint(checkpoint: dict) -> dict:
    """``{'meta', 'state_dict'}`` with the ``student.`` keys, prefix removed.

    Teacher weights are never in mmkd_det checkpoints; adapters and other
    distillation modules (``distill_losses.*``) and the optimizer are dropped.
    """
    state = checkpoint.get('state_dict', checkpoint)
    student = OrderedDict(
        (k[len('student.'):], v) for k, v in state.items() if k.startswith('student.'))
    if not student:
        raise KeyError('No `student.` keys in this checkpoint: it is not an mmkd_det '
                       'Distiller checkpoint (a plain mmdet checkpoint needs no export).')
    meta = dict(checkpoint.get('meta', {}))
    kept = ('epoch', 'iter', 'mmengine_version', 'dataset_meta', 'seed', 'time')
    meta = {k: v for k, v in meta.items() if k in kept}
    meta['exported_from'] = 'mmkd_det.Distiller'
    return dict(meta=meta, state_dict=student)


def export_student(src: str, dst: str) -> dict:
    """Read a Distiller checkpoint ``src`` and write the student to ``dst``."""
    from mmkd_det.compat import load_checkpoint_file
    out = student_checkpoint(load_checkpoint_file(src, map_location='cpu'))
    torch.save(out, dst)
    return out
