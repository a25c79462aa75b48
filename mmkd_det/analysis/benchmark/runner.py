"""Train a run matrix over seeds, resumably.

Each run of a matrix (:mod:`.matrix`) is trained at each of its seeds by
``tools/train.py`` in a subprocess, in ``<work_dir>/<run>/seed<k>``, with
``randomness.seed=<k>`` and its ``cfg_options``. A finished run (its
``run_info.json``, final checkpoint and evaluation present) is not trained
again, so an interrupted benchmark resumes. Relative paths (configs, work
dirs, checkpoints) are relative to the current directory; the built-in runs
expect the repository root.
"""
import json
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from ..logs import eval_history, final_checkpoint, last_metrics, main_key, train_in_subprocess
from .matrix import RunSpec, run_dir, run_seeds, teacher_runs


def needs_teacher(config: str) -> bool:
    """Whether ``config``'s model is a Distiller."""
    return Config.fromfile(config).model.get('type') == 'Distiller'


def is_synthetic(config: str) -> bool:
    """Whether ``config`` trains on the embedded synthetic data (generated, never missing)."""
    return 'synthetic' in osp.basename(config)


def finished(work_dir: str, name: str, seed: int) -> Optional[dict]:
    """The run_info of a finished run, or None."""
    path = osp.join(run_dir(work_dir, name, seed), 'run_info.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_data(runs: Dict[str, RunSpec], names: Sequence[str]) -> None:
    """Stop before any training when a run's dataset files are missing (COCO/VOC
    runs without data/coco or data/VOCdevkit).

    Raises:
        FileNotFoundError: naming the run and the first missing files.
    """
    from mmkd_det.apis import missing_data
    for name in names:
        cfg = runs[name].config
        if is_synthetic(cfg):
            continue
        missing = missing_data(Config.fromfile(cfg))
        if missing:
            raise FileNotFoundError(
                f'{name}: dataset files not found: {missing[:3]}. Put the dataset there '
                f'(see README) or choose synthetic runs.')


def train_one(name: str,
              spec: RunSpec,
              seed: int,
              work_dir: str,
              teacher_ckpt: Optional[str],
              threads: int,
              train_script: str,
              val_interval: Optional[int] = None) -> dict:
    """Train run ``name`` at ``seed`` unless it finished before; its run_info.

    Args:
        name (str): the run's name (its work dir, see :func:`run_dir`).
        spec (RunSpec): its config and options.
        seed (int): the seed.
        work_dir (str): the benchmark's work dir.
        teacher_ckpt (str, optional): ``model.teacher_ckpt`` of a Distiller run.
        threads (int): OMP/MKL threads of the training process.
        train_script (str): path of ``tools/train.py``.
        val_interval (int, optional): evaluate every N epochs.

    Raises:
        RuntimeError: the training failed; the message names its log.
    """
    wd = run_dir(work_dir, name, seed)
    done = finished(work_dir, name, seed)
    if done and final_checkpoint(wd) and last_metrics(wd):
        return done
    os.makedirs(wd, exist_ok=True)
    options = [f'randomness.seed={seed}', *spec.cfg_options]
    if val_interval:
        options.append(f'train_cfg.val_interval={val_interval}')
    if needs_teacher(spec.config) and teacher_ckpt:
        options.append(f'model.teacher_ckpt={teacher_ckpt}')
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        seconds = train_in_subprocess(train_script, spec.config, wd, options, env=env)
    except RuntimeError:
        raise RuntimeError(f'{name} seed {seed} failed, see {wd}/train_stdout.log') from None
    info = dict(
        name=name,
        seed=seed,
        config=spec.config,
        cfg_options=options,
        train_seconds=round(seconds, 1),
        threads=threads,
        metrics=last_metrics(wd),
        history=eval_history(wd))
    with open(osp.join(wd, 'run_info.json'), 'w') as f:
        json.dump(info, f, indent=2)
    key = main_key(info['metrics'])
    if key is None:
        raise RuntimeError(f'{name} seed {seed} trained but logged no box mAP (mmdet logs none '
                           f'when no box scores above the test score_thr); see {wd}')
    print(
        f'done {name} seed {seed}: {key} {100 * info["metrics"][key]:.1f} '
        f'({info["train_seconds"]:.0f} s)',
        flush=True)
    return info


def collect(runs: Dict[str, RunSpec],
            names: Sequence[str],
            work_dir: str,
            seeds: Optional[Sequence[int]] = None) -> List[dict]:
    """The run_info of every finished (run, seed) of ``names``, in matrix order."""
    return [
        r for r in (finished(work_dir, n, s) for n in names for s in run_seeds(runs[n], seeds)) if r
    ]


def baseline(runs: Dict[str, RunSpec],
             work_dir: str,
             seeds: Optional[Sequence[int]] = None) -> List[dict]:
    """The finished ``student`` runs (the fallback of the gains)."""
    spec = runs.get('student', RunSpec(''))
    return [r for r in (finished(work_dir, 'student', s) for s in run_seeds(spec, seeds)) if r]


def run_matrix(runs: Dict[str, RunSpec],
               names: Sequence[str],
               work_dir: str,
               train_script: str,
               seeds: Optional[Sequence[int]] = None,
               teacher_ckpt: Optional[str] = None,
               jobs: int = 1,
               val_interval: Optional[int] = None) -> List[dict]:
    """Train runs ``names`` of ``runs`` over their seeds, ``jobs`` at a time.

    The teacher of a Distiller run: ``teacher_ckpt`` (the command line's) if
    given, else the run's ``teacher_ckpt``, else the final checkpoint of its
    ``teacher`` run at seed 0 (trained first, with every CPU thread), else the
    one its config names. Runs other runs take their teacher from are trained
    at seed 0 only.

    Returns:
        list[dict]: the run_info of every (run, seed), in matrix order.

    Raises:
        FileNotFoundError: a run's dataset is missing (before any training).
        RuntimeError: a training failed.
    """
    if any(is_synthetic(runs[n].config) for n in names):
        from mmkd_det.datasets.synthetic import generate_synthetic_dataset
        generate_synthetic_dataset(
            'data/synthetic', num_train=800, num_val=200, img_size=128, seed=0)
    check_data(runs, names)
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // jobs)
    teachers = {}

    def teacher_of(spec: RunSpec) -> Optional[str]:
        if teacher_ckpt or spec.teacher_ckpt or not spec.teacher:
            return teacher_ckpt or spec.teacher_ckpt
        if spec.teacher not in teachers:
            parent = runs[spec.teacher]
            train_one(spec.teacher, parent, 0, work_dir,
                      teacher_of(parent) if needs_teacher(parent.config) else None, cpus,
                      train_script)
            teachers[spec.teacher] = final_checkpoint(run_dir(work_dir, spec.teacher, 0))
        return teachers[spec.teacher]

    planned = {n: teacher_of(runs[n]) for n in names if needs_teacher(runs[n].config)}
    seed0 = teacher_runs(runs)
    todo = [(n, s) for n in names for s in run_seeds(runs[n], seeds) if n not in seed0 or s == 0]
    with ThreadPoolExecutor(jobs) as pool:
        return list(
            pool.map(
                lambda j: train_one(j[0], runs[j[0]], j[1], work_dir, planned.get(j[0]), threads,
                                    train_script, val_interval), todo))
