"""Gradient norm of each loss term on the student's parameters, for a few batches.

A distillation loss's value says little about how hard it pulls on the student
(an L2 norm and a squared error of the same features differ by orders of
magnitude in value); :func:`grad_norms` gives, averaged over batches, the value
of the task loss and of every distillation term and the norm of its gradient on
the student's trainable parameters, so loss weights can be compared with the
task loss directly.

The command line is ``tools/analysis_tools/grad_norms.py``.
"""
import statistics as st
from typing import Optional

import torch
from mmengine.registry import DefaultScope

from mmkd_det.apis import build_distiller, build_loader


def grad_norms(config: str,
               teacher_ckpt: Optional[str] = None,
               checkpoint: Optional[str] = None,
               batches: int = 3,
               cfg_options: Optional[dict] = None) -> dict:
    """Mean value and gradient norm of each loss term over ``batches`` batches.

    Args:
        config (str): a Distiller config.
        teacher_ckpt (str, optional): overrides ``model.teacher_ckpt``.
        checkpoint (str, optional): a Distiller checkpoint of a run (default: the
            freshly initialised student).
        batches (int): training batches (loader seed 0).
        cfg_options (dict, optional): config overrides.

    Returns:
        dict: ``{term: dict(value, grad_norm, grad_norm_over_task)}``; ``task`` is
        the sum of the student's own losses, ``distill.*`` each distillation term.

    Raises:
        ValueError: the config's model is not a Distiller.
    """
    from mmkd_det.compat import load_checkpoint_file
    cfg, model = build_distiller(config, cfg_options, teacher_ckpt)
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        model.init_weights()
    loader = build_loader(cfg.train_dataloader, seed=0)
    if checkpoint:
        state = load_checkpoint_file(checkpoint, map_location='cpu')
        model.load_state_dict(state.get('state_dict', state), strict=True)
    model.train()
    model.set_progress(iter=10**9)  # past any warm-up
    params = [q for q in model.student.parameters() if q.requires_grad]
    rows = {}
    for _, data in zip(range(batches), loader):
        batch = model.data_preprocessor(data, True)
        losses = model.loss(batch['inputs'], batch['data_samples'])
        groups = {
            'task':
            model.parse_losses({
                k: v
                for k, v in losses.items() if not k.startswith('distill')
            })[0]
        }
        groups.update({k: v for k, v in losses.items() if k.startswith('distill.')})
        for name, value in groups.items():
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            norm = torch.sqrt(sum((g.float()**2).sum() for g in grads if g is not None))
            rows.setdefault(name, []).append((value.item(), norm.item()))
    task_norm = st.mean(n for _, n in rows['task'])
    out = {}
    for name, vals in rows.items():
        value, norm = st.mean(v for v, _ in vals), st.mean(n for _, n in vals)
        out[name] = dict(value=value, grad_norm=norm, grad_norm_over_task=norm / task_norm)
    return out


def grad_norms_table(terms: dict) -> str:
    """The printed table of a :func:`grad_norms` result."""
    lines = [f'{"term":32s} {"value":>10s} {"grad norm":>10s} {"/ task":>8s}']
    lines += [
        f'{name:32s} {t["value"]:10.4g} {t["grad_norm"]:10.4g} '
        f'{t["grad_norm_over_task"]:8.3g}' for name, t in terms.items()
    ]
    return '\n'.join(lines)
