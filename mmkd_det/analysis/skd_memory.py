"""Memory of Structured KD's non-local distillation at full COCO resolution.

The relation matrix of a level with ``HW`` positions and ``K`` keys is ``HW x K``;
without sub-sampling ``K = HW`` and P2 of a 1333 x 800 image alone needs 18 GB
per image. For each non-local setting this prints, per FPN level, the size of
one relation matrix (computed) and the measured peak memory of one SKDLoss
forward + backward on random FPN features of that size (R50-FPN widths, 256
channels, P2-P6, batch 2 by default): CUDA's max_memory_allocated on a GPU, the
growth of the process's peak RSS on CPU (each setting in a fresh subprocess,
``python -m mmkd_det.analysis.skd_memory``).

Settings whose computed relation matrices exceed ``max_gb`` are reported but
not run. The command line is ``tools/analysis_tools/measure_skd_memory.py``.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys

SETTINGS = {
    "authors' strides 8/4/2/2/2":
    dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2)),
    'stride 16/8/4/4/4 (mmrazor double pool)':
    dict(sub_sample=(16, 8, 4, 4, 4), reduction=(4, 4, 2, 2, 2)),
    'no sub-sampling':
    dict(sub_sample=1, reduction=(4, 4, 2, 2, 2)),
}


def level_shapes(height: int, width: int, strides=(4, 8, 16, 32, 64), divisor: int = 32):
    """(H, W) of each FPN level for an image padded to ``divisor`` (mmdet's ceil)."""
    ph, pw = math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor
    return [(math.ceil(ph / s), math.ceil(pw / s)) for s in strides]


def relation_gb(shapes, sub_sample, batch: int) -> list:
    """GB of the float32 relation matrices of each level (``HW x K`` per image)."""
    subs = [sub_sample] * len(shapes) if isinstance(sub_sample, int) else list(sub_sample)
    out = []
    for (h, w), k in zip(shapes, subs):
        keys = math.ceil(h / k) * math.ceil(w / k)
        out.append(batch * h * w * keys * 4 / 1e9)
    return out


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def setting_peak(setting: str, height: int, width: int, batch: int, mode: str, device: str) -> dict:
    """``peak_gb`` of one SKDLoss forward + backward of ``setting`` (a key of
    :data:`SETTINGS`) in this process (module doc)."""
    import torch

    from mmkd_det.models.losses import SKDLoss
    torch.manual_seed(0)
    cuda = device == 'cuda'
    shapes = level_shapes(height, width)
    loss = SKDLoss(preset='paper_two_stage', nonlocal_mode=mode, nonlocal_cfg=SETTINGS[setting])
    size = [torch.Size([batch, 256, h, w]) for h, w in shapes]
    loss.setup(dict(s_feats=size, t_feats=size))
    loss.to(device)
    s = [torch.randn(*x, device=device, requires_grad=True) for x in size]
    t = [torch.randn(*x, device=device) for x in size]
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


def measure_settings(height: int = 800,
                     width: int = 1333,
                     batch: int = 2,
                     mode: str = 'embedded_gaussian',
                     device: str = 'cpu',
                     max_gb: float = 8.0) -> list:
    """One row per :data:`SETTINGS` entry: computed relation sizes and, below
    ``max_gb``, the measured peak (each in a fresh process); printed as it goes.

    Raises:
        RuntimeError: a measuring process failed (its stderr in the message).
    """
    shapes = level_shapes(height, width)
    results = []
    for name, cfg in SETTINGS.items():
        per_level = relation_gb(shapes, cfg['sub_sample'], batch)
        row = dict(
            setting=name,
            sub_sample=cfg['sub_sample'],
            relation_gb_per_level=[round(x, 4) for x in per_level],
            relation_gb_total=round(sum(per_level), 3),
            measured_peak_gb=None)
        if sum(per_level) <= max_gb:
            cmd = [sys.executable, '-m', 'mmkd_det.analysis.skd_memory', '--child', name] + [
                f'--{k}={v}' for k, v in (('height', height), ('width', width), ('batch', batch),
                                          ('mode', mode), ('device', device))
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            row['measured_peak_gb'] = round(json.loads(proc.stdout.splitlines()[-1])['peak_gb'], 3)
        results.append(row)
        print(setting_line(row), flush=True)
    return results


def setting_line(row: dict) -> str:
    """The printed line of one :func:`measure_settings` row."""
    peak = 'not run (> --max-gb)' if row['measured_peak_gb'] is None \
        else f'{row["measured_peak_gb"]:.2f} GB'
    return (f'{row["setting"]:42s} relation matrices {row["relation_gb_total"]:8.2f} GB '
            f'(per level {row["relation_gb_per_level"]}); peak fwd+bwd {peak}')


def _child() -> None:
    """``python -m mmkd_det.analysis.skd_memory --child SETTING ...``: print
    :func:`setting_peak` as JSON (run by :func:`measure_settings`)."""
    p = argparse.ArgumentParser(description=_child.__doc__)
    p.add_argument('--child', required=True, choices=sorted(SETTINGS))
    for k in ('height', 'width', 'batch'):
        p.add_argument(f'--{k}', type=int, required=True)
    p.add_argument('--mode', required=True)
    p.add_argument('--device', required=True)
    args = p.parse_args()
    print(
        json.dumps(
            setting_peak(args.child, args.height, args.width, args.batch, args.mode, args.device)))


if __name__ == '__main__':
    _child()
