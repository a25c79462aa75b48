"""Turn a Distiller checkpoint into a plain mmdet checkpoint of the student."""
from collections import OrderedDict

import torch

from ..compat import checkpoint_state_dict, load_checkpoint_file
from ..models.distillers.teacher_loading import is_distiller_state, split_student


def student_checkpoint(checkpoint: dict, path: str = 'checkpoint') -> dict:
    """``{'meta', 'state_dict'}`` with the ``student.`` keys, prefix removed.

    Teacher weights are never in mmkd_det checkpoints; adapters and other
    distillation modules (``distill_losses.*``) and the optimizer are dropped.

    Args:
        checkpoint (dict): a Distiller checkpoint (as loaded).
        path (str): where it was read from, for errors.

    Returns:
        dict: the student's checkpoint.
    """
    state = checkpoint_state_dict(checkpoint, path, key='export source')
    if not is_distiller_state(state):
        raise KeyError(f'No `student.` keys in {path!r}: it is not an mmkd_det Distiller '
                       'checkpoint (a plain mmdet checkpoint needs no export).')
    student = OrderedDict(split_student(state)[0])
    meta = dict(checkpoint.get('meta', {}))
    kept = ('epoch', 'iter', 'mmengine_version', 'dataset_meta', 'seed', 'time')
    meta = {k: v for k, v in meta.items() if k in kept}
    meta['exported_from'] = 'mmkd_det.Distiller'
    return dict(meta=meta, state_dict=student)


def export_student(src: str, dst: str) -> dict:
    """Read a Distiller checkpoint ``src`` and write the student to ``dst``."""
    out = student_checkpoint(
        load_checkpoint_file(src, map_location='cpu', key='export source'), src)
    torch.save(out, dst)
    return out
