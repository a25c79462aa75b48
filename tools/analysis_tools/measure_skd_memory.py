"""Memory of Structured KD's non-local distillation at full COCO resolution.

The relation matrix of a level with ``HW`` positions and ``K`` keys is ``HW x K``;
without sub-sampling ``K = HW`` and P2 of a 1333 x 800 image alone needs 18 GB
per image. For each non-local setting this prints, per FPN level, the size of
one relation matrix (computed) and the measured peak memory of one SKDLoss
forward + backward on random FPN features of that size (R50-FPN widths, 256
channels, P2-P6, batch 2 by default): CUDA's max_memory_allocated on a GPU, the
growth of the process's peak RSS on CPU (each setting in a fresh subprocess).

    python tools/measure_skd_memory.py                    # authors' strides 8/4/2/2/2
    python tools/measure_skd_memory.py --json docs/measurements/skd_memory.json

Settings whose computed relation matrices exceed ``--max-gb`` are reported but
not run.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SETTINGS = {
    "authors' strides 8/4/2/2/2": dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)),
    'stride 16/8/4/4/4 (mmrazor double pool)': dict(sub_sample=(16, 8, 4, 4, 4),
                                                    reduction=(4, 4, 2, 2, 2)),
    'no sub-sampling': dict(sub_sample=1, reduction=(4, 4, 2, 2, 2)),
}


def level_shapes(height: int, width: int, strides=(4, 8, 16, 32, 64), divisor: int = 32):
    """(H, W) of each FPN level for an image padded to ``divisor`` (mmdet's ceil)."""
    ph, pw = math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor
    return [(math.ceil(ph / s), math.ceil(pw / s)) for s in strides]


def relation_gb(shapes, sub_sample, batch: int) -> list:
    subs = [sub_sample] * len(shapes) if isinstance(sub_sample, int) else list(sub_sample)
    out = []
    for (h, w), k in zip(shapes, subs):
        keys = math.ceil(h / k) * math.ceil(w / k)
        out.append(batch * h * w * keys * 4 / 1e9)
    return out


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def child(args) -> dict:
    import torch
    from mmkd_det.models.losses import SKDLoss
    torch.manual_seed(0)
    cuda = args.device == 'cuda'
    shapes = level_shapes(args.height, args.width)
    loss = SKDLoss(preset='paper_two_stage', nonlocal_mode=args.mode,
                   nonlocal_cfg=SETTINGS[args.child])
    size = [torch.Size([args.batch, 256, h, w]) for h, w in shapes]
    loss.setup(dict(s_feats=size, t_feats=size))
    loss.to(args.device)
    s = [torch.randn(*x, device=args.device, requires_grad=True) for x in size]
    t = [torch.randn(*x, device=args.device) for x in size]
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    sum(loss(s, t).values()).backward()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return dict(peak_gb=peak / 1e9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--height', type=int, default=800)
    parser.add_argument('--width', type=int, default=1333)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--mode', default='embedded_gaussian',
                        help='non-local pairwise function (Table IX)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--max-gb', type=float, default=8.0,
                        help='skip settings whose relation matrices exceed this')
    parser.add_argument('--json', default=None)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    shapes = level_shapes(args.height, args.width)
    print(f'{args.width} x {args.height}, batch {args.batch}, 256 channels, levels '
          f'{shapes}, mode {args.mode}, device {args.device}')
    results = []
    for name, cfg in SETTINGS.items():
        per_level = relation_gb(shapes, cfg['sub_sample'], args.batch)
        row = dict(setting=name, sub_sample=cfg['sub_sample'],
                   relation_gb_per_level=[round(x, 4) for x in per_level],
                   relation_gb_total=round(sum(per_level), 3), measured_peak_gb=None)
        if sum(per_level) <= args.max_gb:
            cmd = [sys.executable, __file__, '--child', name] + [
                f'--{k}={getattr(args, k)}' for k in ('height', 'width', 'batch', 'mode',
                                                      'device')]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            row['measured_peak_gb'] = round(json.loads(proc.stdout.splitlines()[-1])
                                            ['peak_gb'], 3)
        results.append(row)
        peak = 'not run (> --max-gb)' if row['measured_peak_gb'] is None \
            else f'{row["measured_peak_gb"]:.2f} GB'
        print(f'{name:42s} relation matrices {row["relation_gb_total"]:8.2f} GB '
              f'(per level {row["relation_gb_per_level"]}); peak fwd+bwd {peak}')
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(height=args.height, width=args.width, batch=args.batch,
                           mode=args.mode, device=args.device, levels=shapes,
                           results=results), f, indent=2)


if __name__ == '__main__':
    main()
