"""What a training run leaves in its work dir, and a training in a subprocess.

mmengine's ``LocalVisBackend`` writes every logged scalar of a run to
``<work_dir>/<timestamp>/vis_data/scalars.json``, one JSON object a line; an
evaluation is a line with a box metric (:data:`MAIN_KEYS`). The checkpoint
hook writes the path of the latest checkpoint to ``<work_dir>/last_checkpoint``.
"""
import glob
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Optional, Sequence

#: CocoMetric's box metrics, in table order (logged as ``coco/<name>``)
METRICS = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l']
#: the box metric each evaluator logs: CocoMetric's mAP, VOCMetric's AP at IoU 0.5
MAIN_KEYS = ('coco/bbox_mAP', 'pascal_voc/AP50')


def main_key(rec: dict) -> Optional[str]:
    """The headline box metric of a logged evaluation (see :data:`MAIN_KEYS`), or None."""
    return next((k for k in MAIN_KEYS if k in rec), None)


def eval_records(work_dir: str) -> list:
    """Every evaluation (COCO or VOC) written by mmengine's LocalVisBackend in ``work_dir``."""
    out = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            out += [rec for rec in map(json.loads, f) if main_key(rec)]
    return out


def last_metrics(work_dir: str) -> dict:
    """The last evaluation in ``work_dir`` ({} when none)."""
    records = eval_records(work_dir)
    return records[-1] if records else {}


def eval_history(work_dir: str) -> list:
    """``[epoch, headline box mAP]`` of every evaluation logged in ``work_dir``."""
    return [[rec.get('step'), rec[main_key(rec)]] for rec in eval_records(work_dir)]


def final_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named by ``<work_dir>/last_checkpoint`` if that file exists, else None."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def train_in_subprocess(train_script: str,
                        config: str,
                        work_dir: str,
                        cfg_options: Sequence[str],
                        cwd: Optional[str] = None,
                        env: Optional[dict] = None,
                        args: Sequence[str] = (),
                        append_log: bool = False) -> float:
    """Run ``train_script config --work-dir work_dir [args] --cfg-options ...``
    with this Python, its output in ``<work_dir>/train_stdout.log``.

    Args:
        train_script (str): path of ``tools/train.py``.
        config (str): the config, relative to ``cwd`` or absolute.
        work_dir (str): the run's work dir (must exist), relative to ``cwd``.
        cfg_options (Sequence[str]): ``key=value`` overrides.
        cwd (str, optional): working directory of the training.
        env (dict, optional): its environment (default: this process's).
        args (Sequence[str]): more arguments of the script (``--overlay F``,
            ``--resume``).
        append_log (bool): append to the log instead of replacing it (a resumed run).

    Returns:
        float: the wall-clock seconds of the training.

    Raises:
        RuntimeError: the training failed; the message names its log.
    """
    cmd = [
        sys.executable, train_script, config, '--work-dir', work_dir, *args, '--cfg-options',
        *cfg_options
    ]
    print('$', ' '.join(cmd), flush=True)
    log_path = osp.join(work_dir, 'train_stdout.log')
    start = time.time()
    with open(log_path if cwd is None else osp.join(cwd, log_path), 'a' if append_log else 'w') \
            as log:
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'training failed, see {log_path}')
    return time.time() - start
