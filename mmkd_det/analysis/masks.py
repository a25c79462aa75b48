"""Per-FPN-level heatmaps of a distillation config's masks over input images.

:func:`save_mask_figures` builds the config's Distiller (teacher weights from
``teacher_ckpt``, student optionally from a checkpoint of a distillation run),
takes images of the validation set and, for every loss that exposes
``visual_maps`` (TID: key and weak areas, information value, final M; FRS:
feature richness), saves one PNG per image and loss: rows = maps, columns = FPN
levels (finest left, as the TID paper's Fig. 4), each map upsampled and
overlaid on the image.

The command line is ``tools/analysis_tools/visualize_masks.py``.
"""
import os
import os.path as osp
from typing import List, Optional

import torch
from mmengine.registry import DefaultScope

from mmkd_det.apis import build_distiller_and_batch, student_checkpoint
from mmkd_det.models.distillers import loss_visual_maps


def load_student(model, path):
    """Student weights from a Distiller checkpoint or an exported student."""
    from mmkd_det.compat import load_checkpoint_file
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith('student.') for k in state):  # a Distiller checkpoint
        state = student_checkpoint(ckpt)['state_dict']
    missing = model.student.load_state_dict(state, strict=False).missing_keys
    if missing:
        print(f'warning: {len(missing)} weights not in {path}, e.g. {missing[:3]}')


def draw(image, maps: dict, title: str, path: str) -> None:
    """Save one figure: ``maps`` ({name: [level map (H, W)]}) over ``image``
    (H, W, 3 RGB uint8), one row per map and one column per level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch.nn.functional as F
    h, w = image.shape[:2]
    rows, cols = len(maps), max(len(v) for v in maps.values())
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for r, (name, levels) in enumerate(maps.items()):
        vmax = max(float(m.max()) for m in levels) or 1.0
        for c, m in enumerate(levels):
            ax = axes[r][c]
            up = F.interpolate(
                m[None, None].float(), scale_factor=image_scale(m, image),
                mode='nearest')[0, 0][:h, :w]
            ax.imshow(image)
            im = ax.imshow(up.numpy(), cmap='jet', alpha=0.55, vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f'level {c} ({m.shape[0]}x{m.shape[1]})', fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def image_scale(level_map, image) -> int:
    """Upsampling factor from a level to the padded input (its stride)."""
    return image.shape[0] // level_map.shape[0] if image.shape[0] >= level_map.shape[0] \
        else 1


def save_mask_figures(config: str,
                      out: str,
                      teacher_ckpt: Optional[str] = None,
                      student_ckpt: Optional[str] = None,
                      num_images: int = 4,
                      cfg_options: Optional[dict] = None) -> List[str]:
    """Draw the masks of ``config`` on ``num_images`` validation images (module doc).

    Args:
        config (str): a Distiller config.
        out (str): output folder of ``<loss>_img<i>.png``.
        teacher_ckpt (str, optional): overrides ``model.teacher_ckpt``.
        student_ckpt (str, optional): Distiller or student checkpoint of a run;
            default: the untrained student.
        num_images (int): validation images (one batch).
        cfg_options (dict, optional): config overrides.

    Returns:
        list[str]: the written files.

    Raises:
        ValueError: the config is not a Distiller config or none of its losses
            defines ``visual_maps``.
    """
    _, model, data = build_distiller_and_batch(
        config, cfg_options, teacher_ckpt, split='val', batch_size=num_images)
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        if student_ckpt:
            load_student(model, student_ckpt)
        model.eval()
    batch = model.data_preprocessor(data, False)
    maps = loss_visual_maps(model, batch['inputs'], batch['data_samples'],
                            batch.get('teacher_inputs'))
    if not maps:
        raise ValueError('No loss of this config defines visual_maps.')
    os.makedirs(out, exist_ok=True)
    written = []
    pad_h, pad_w = batch['inputs'].shape[-2:]
    for i, sample in enumerate(batch['data_samples']):
        raw = data['inputs'][i].permute(1, 2, 0).flip(-1)  # BGR uint8 -> RGB
        canvas = torch.zeros(pad_h, pad_w, 3, dtype=torch.uint8)
        canvas[:raw.shape[0], :raw.shape[1]] = raw
        for name, per_map in maps.items():
            per_image = {k: [lvl[i] for lvl in v] for k, v in per_map.items()}
            path = osp.join(out, f'{name}_img{i}.png')
            draw(
                canvas.numpy(), per_image, f'{osp.basename(config)} / {name} / '
                f'{osp.basename(sample.img_path)} ({len(sample.gt_instances)} GT)', path)
            written.append(path)
    return written
