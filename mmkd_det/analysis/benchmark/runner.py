"""Train a run matrix over seeds, resumably.

Each run of a matrix (:mod:`.matrix`) is trained at each of its seeds by
``tools/train.py`` in a subprocess, in ``<work_dir>/<run>/seed<k>``, with
``randomness.seed=<k>``, its ``overlays`` and ``cfg_options``. A finished run
(its ``run_info.json``, final checkpoint and evaluation present) is not trained
again, and an interrupted one continues from its last checkpoint (``--resume``),
so a benchmark can be spread over several sessions. Where the work dir is gone
(another machine), the results a benchmark wrote before (its ``<out>.json``)
stand in for the runs they hold (:func:`load_earlier`). Relative paths (configs, work
dirs, checkpoints) are relative to the current directory; the built-in runs
expect the repository root.
"""
import json
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from ..logs import eval_history, final_checkpoint, last_metrics, main_key, train_in_subprocess
from .matrix import RunSpec, run_dir, run_seeds, spec_teachers, teacher_runs


def needs_teacher(config: str) -> bool:
    """Whether ``config``'s model is a Distiller."""
    return Config.fromfile(config).model.get('type') == 'Distiller'


def load_run_config(spec: RunSpec) -> Config:
    """A run's config with its overlays merged, as ``tools/train.py`` builds it."""
    from mmkd_det.apis import load_config
    return load_config(spec.config, overlays=spec.overlays)


def synthetic_presets(spec: RunSpec) -> List[str]:
    """The embedded synthetic datasets (``SYNTHETIC_PRESETS`` names) a run reads;
    they are generated before training, never missing."""
    from mmkd_det.datasets.synthetic import presets_in_config
    return presets_in_config(load_run_config(spec))


def finished(work_dir: str, name: str, seed: int) -> Optional[dict]:
    """The run_info of a finished run, or None."""
    path = osp.join(run_dir(work_dir, name, seed), 'run_info.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


#: earlier results: run_info records keyed by (run, seed), see :func:`load_earlier`
Earlier = Dict[Tuple[str, int], dict]
#: options train_one adds that do not change what a run is (where its teacher lies,
#: how often it is evaluated)
_PLACE_OPTIONS = ('model.teacher_ckpt=', 'model.teachers.', 'train_cfg.val_interval=')


def run_options(spec: RunSpec, seed: int) -> List[str]:
    """The ``--cfg-options`` that define run ``spec`` at ``seed`` (before the ones
    that only place it, :data:`_PLACE_OPTIONS`)."""
    return [f'randomness.seed={seed}', *spec.cfg_options]


def _is_results(records) -> bool:
    return isinstance(records, list) and all(
        isinstance(r, dict) and {'name', 'seed', 'metrics'} <= set(r) for r in records)


class ResultsError(ValueError):
    """An earlier results file that cannot stand in for its runs."""


def load_earlier(paths: Sequence[str], runs: Dict[str, RunSpec]) -> Earlier:
    """The runs of earlier result files (the ``<out>.json`` the benchmark writes).

    Such a record counts as a finished run where the work dir has none, so a
    benchmark can go on where its work dir is gone, from the results it wrote
    (a teacher run whose checkpoint a student needs is trained again). Each
    record keeps the file it came from as ``source``, which the tables name.
    Records of runs ``runs`` does not define are ignored; the first file that
    holds a (run, seed) wins.

    Raises:
        ResultsError: a file is not such a list of records, or a record was
            trained with another config, overlays or options than its run's
            definition now (the tables would mix two different runs).
    """
    from mmkd_det.apis import read_json
    earlier: Earlier = {}
    for path in paths:
        try:
            records = read_json(
                path, _is_results, 'a benchmark results file (a list of run records with '
                'name, seed and metrics)', 'give the .json results file a benchmark wrote (its '
                '--out stem + .json).')
        except ValueError as err:
            raise ResultsError(f'--results {err}') from None
        for r in records:
            spec = runs.get(r['name'])
            if spec is None or (r['name'], r['seed']) in earlier:
                continue
            made = dict(
                config=r.get('config'),
                overlays=r.get('overlays', []),
                cfg_options=[
                    o for o in r.get('cfg_options', []) if not o.startswith(_PLACE_OPTIONS)
                ])
            defined = dict(
                config=spec.config,
                overlays=list(spec.overlays),
                cfg_options=run_options(spec, r['seed']))
            if made != defined:
                diff = {k: (made[k], defined[k]) for k in made if made[k] != defined[k]}
                raise ResultsError(
                    f'--results {path}: {r["name"]} seed {r["seed"]} was trained with '
                    f'{ {k: v[0] for k, v in diff.items()} }, but the run is now defined with '
                    f'{ {k: v[1] for k, v in diff.items()} }. Train it again (drop that file) '
                    f'or give the run its old definition.')
            earlier[(r['name'], r['seed'])] = dict(r, source=r.get('source', path))
    return earlier


def check_data(runs: Dict[str, RunSpec], names: Sequence[str]) -> None:
    """Stop before any training when a run's dataset files are missing (COCO/VOC
    runs without data/coco or data/VOCdevkit).

    Raises:
        FileNotFoundError: naming the run and the first missing files.
    """
    from mmkd_det.apis import missing_data
    for name in names:
        if synthetic_presets(runs[name]):
            continue
        missing = missing_data(load_run_config(runs[name]))
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
    # an interrupted run continues from its last checkpoint (same seed and options)
    resume = osp.isfile(osp.join(wd, 'last_checkpoint')) and not done
    args = [a for o in spec.overlays for a in ('--overlay', o)] + (['--resume'] if resume else [])
    options = run_options(spec, seed)
    if val_interval:
        options.append(f'train_cfg.val_interval={val_interval}')
    if needs_teacher(spec.config) and isinstance(teacher_ckpt, dict):  # several teachers
        options += [f'model.teachers.{n}.ckpt={c}' for n, c in teacher_ckpt.items()]
    elif needs_teacher(spec.config) and teacher_ckpt:
        options.append(f'model.teacher_ckpt={teacher_ckpt}')
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        seconds = train_in_subprocess(
            train_script, spec.config, wd, options, env=env, args=args, append_log=resume)
    except RuntimeError:
        raise RuntimeError(f'{name} seed {seed} failed, see {wd}/train_stdout.log') from None
    info = dict(
        name=name,
        seed=seed,
        config=spec.config,
        overlays=list(spec.overlays),
        cfg_options=options,
        # a resumed run: the seconds of its last part only
        train_seconds=round(seconds, 1),
        resumed=resume,
        threads=threads,
        teacher_run=(spec.teacher if isinstance(spec.teacher, str) else spec_teachers(spec))
        if needs_teacher(spec.config) else None,
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


def finished_or_earlier(work_dir: str,
                        name: str,
                        seed: int,
                        earlier: Optional[Earlier] = None) -> Optional[dict]:
    """The run_info of run ``name`` at ``seed``: finished in the work dir, else
    from ``earlier`` results (:func:`load_earlier`), else None."""
    return finished(work_dir, name, seed) or (earlier or {}).get((name, seed))


def collect(runs: Dict[str, RunSpec],
            names: Sequence[str],
            work_dir: str,
            seeds: Optional[Sequence[int]] = None,
            earlier: Optional[Earlier] = None) -> List[dict]:
    """The run_info of every finished (run, seed) of ``names`` (in the work dir,
    else in ``earlier``), in matrix order."""
    found = (
        finished_or_earlier(work_dir, n, s, earlier) for n in names
        for s in run_seeds(runs[n], seeds))
    return [r for r in found if r]


def baseline(runs: Dict[str, RunSpec],
             work_dir: str,
             seeds: Optional[Sequence[int]] = None,
             earlier: Optional[Earlier] = None) -> List[dict]:
    """The finished ``student`` runs (the fallback of the gains)."""
    spec = runs.get('student', RunSpec(''))
    found = (finished_or_earlier(work_dir, 'student', s, earlier) for s in run_seeds(spec, seeds))
    return [r for r in found if r]


def teacher_results(runs: Dict[str, RunSpec],
                    names: Sequence[str],
                    work_dir: str,
                    earlier: Optional[Earlier] = None) -> List[dict]:
    """The finished seed-0 run_info of the teacher runs of ``names`` (for the
    tables' teacher column)."""
    found = (
        finished_or_earlier(work_dir, t, 0, earlier)
        for t in sorted(teacher_runs({n: runs[n]
                                      for n in names})))
    return [r for r in found if r]


def run_matrix(runs: Dict[str, RunSpec],
               names: Sequence[str],
               work_dir: str,
               train_script: str,
               seeds: Optional[Sequence[int]] = None,
               teacher_ckpt: Optional[str] = None,
               jobs: int = 1,
               val_interval: Optional[int] = None,
               threads: Optional[int] = None,
               earlier: Optional[Earlier] = None) -> List[dict]:
    """Train runs ``names`` of ``runs`` over their seeds, ``jobs`` at a time.

    The teacher of a Distiller run: ``teacher_ckpt`` (the command line's) if
    given, else the run's ``teacher_ckpt``, else the final checkpoint of its
    ``teacher`` run at seed 0 (trained first, with every CPU thread), else the
    one its config names. Runs other runs take their teacher from are trained
    at seed 0 only. Each training gets ``threads`` CPU threads (default: the CPUs
    divided by ``jobs``; a teacher trained first gets them all); set it to 1 when
    other trainings share the machine, as oversubscribed threads slow every one.
    A (run, seed) of ``earlier`` results not finished in the work dir is taken
    from there, not trained (nor is its teacher, for it).

    Returns:
        list[dict]: the run_info of every (run, seed), in matrix order.

    Raises:
        FileNotFoundError: a run's dataset is missing (before any training).
        RuntimeError: a training failed.
    """
    from mmkd_det.datasets.synthetic import generate_preset
    wanted = set(names) | teacher_runs({n: runs[n] for n in names})
    for preset in sorted({p for n in wanted for p in synthetic_presets(runs[n])}):
        generate_preset(preset)
    check_data(runs, names)
    cpus = threads or os.cpu_count() or 1
    threads = threads or max(1, cpus // jobs)
    teachers = {}

    def trained(run: str) -> str:
        """The final checkpoint of ``run`` at seed 0, trained first if need be."""
        if run not in teachers:
            parent = runs[run]
            train_one(run, parent, 0, work_dir,
                      teacher_of(parent) if needs_teacher(parent.config) else None, cpus,
                      train_script)
            teachers[run] = final_checkpoint(run_dir(work_dir, run, 0))
        return teachers[run]

    def teacher_of(spec: RunSpec) -> Union[str, Dict[str, str], None]:
        if teacher_ckpt or spec.teacher_ckpt or not spec.teacher:
            return teacher_ckpt or spec.teacher_ckpt
        if isinstance(spec.teacher, str):
            return trained(spec.teacher)
        return {name: trained(run) for name, run in spec_teachers(spec).items()}

    earlier = earlier or {}
    seed0 = teacher_runs(runs)
    todo = [(n, s) for n in names for s in run_seeds(runs[n], seeds) if n not in seed0 or s == 0]
    taken = {j for j in todo if j in earlier and not finished(work_dir, *j)}
    planned = {
        n: teacher_of(runs[n])
        for n in dict.fromkeys(n for n, s in todo if (n, s) not in taken)
        if needs_teacher(runs[n].config)
    }

    def one(job: Tuple[str, int]) -> dict:
        if job in taken:
            return earlier[job]
        return train_one(job[0], runs[job[0]], job[1], work_dir, planned.get(job[0]), threads,
                         train_script, val_interval)

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, todo))
