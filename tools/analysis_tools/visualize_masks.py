"""Per-FPN-level heatmaps of a distillation config's masks over input images.

Builds the config's Distiller (teacher weights from ``teacher_ckpt``, student
optionally from a checkpoint of a distillation run), takes images of the
validation set and, for every loss that exposes ``visual_maps`` (TID: key and
weak areas, information value, final M; FRS: feature richness), saves one PNG
per image and loss: rows = maps, columns = FPN levels (finest left, as the
TID paper's Fig. 4), each map upsampled and overlaid on the image.

    python tools/visualize_masks.py configs/tid/tid_retina_r18w48_r18w32_synthetic.py \
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth \
        --student-ckpt work_dirs/benchmark/TID/seed0/epoch_5.pth --out docs/images/tid
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--teacher-ckpt', help='override model.teacher_ckpt')
    p.add_argument('--student-ckpt', help='Distiller or student checkpoint of a run; '
                   'default: the untrained student')
    p.add_argument('--num-images', type=int, default=4)
    p.add_argument('--out', default='work_dirs/masks')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='key=value overrides, as in tools/train.py')
    return p.parse_args()


def load_student(model, path):
    """Student weights from a Distiller checkpoint or an exported student."""
    from mmkd_det.apis import student_checkpoint
    from mmkd_det.compat import load_checkpoint_file
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith('student.') for k in state):       # a Distiller checkpoint
        state = student_checkpoint(ckpt)['state_dict']
    missing = model.student.load_state_dict(state, strict=False).missing_keys
    if missing:
        print(f'warning: {len(missing)} weights not in {path}, e.g. {missing[:3]}')


def draw(image, maps, title, path):
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
            up = F.interpolate(m[None, None].float(), scale_factor=image_scale(m, image),
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


def image_scale(level_map, image):
    """Upsampling factor from a level to the padded input (its stride)."""
    return image.shape[0] // level_map.shape[0] if image.shape[0] >= level_map.shape[0] \
        else 1


def main():
    args = parse_args()
    os.chdir(ROOT)
    import torch
    from mmengine.registry import DefaultScope

    from mmkd_det.apis import build_distiller, build_loader
    try:
        cfg, model = build_distiller(args.config, args.cfg_options, args.teacher_ckpt)
    except ValueError as err:
        sys.exit(str(err))
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        if args.student_ckpt:
            load_student(model, args.student_ckpt)
        model.eval()
    data = next(iter(build_loader(cfg.val_dataloader, batch_size=args.num_images)))
    batch = model.data_preprocessor(data, False)
    maps = model.visual_maps(batch['inputs'], batch['data_samples'],
                             batch.get('teacher_inputs'))
    if not maps:
        sys.exit('No loss of this config defines visual_maps.')
    os.makedirs(args.out, exist_ok=True)
    pad_h, pad_w = batch['inputs'].shape[-2:]
    for i, sample in enumerate(batch['data_samples']):
        raw = data['inputs'][i].permute(1, 2, 0).flip(-1)      # BGR uint8 -> RGB
        canvas = torch.zeros(pad_h, pad_w, 3, dtype=torch.uint8)
        canvas[:raw.shape[0], :raw.shape[1]] = raw
        for name, per_map in maps.items():
            per_image = {k: [lvl[i] for lvl in v] for k, v in per_map.items()}
            path = osp.join(args.out, f'{name}_img{i}.png')
            draw(canvas.numpy(), per_image, f'{osp.basename(args.config)} / {name} / '
                 f'{osp.basename(sample.img_path)} ({len(sample.gt_instances)} GT)', path)
            print('wrote', path)


if __name__ == '__main__':
    main()
