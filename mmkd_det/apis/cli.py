"""Command-line pieces shared by the scripts in ``tools/``.

Every script in ``tools/`` is a thin argparse front end over the package. The
options that several of them take (``--cfg-options``, ``--distiller-options``,
``--launcher``/``--local_rank``, ``--keep-heap``, ``--teacher-ckpt``,
``--json``) and what the scripts do with them (loading a config the way mmdet's
``tools/train.py`` does, turning the process's glibc heap setting on, writing a
result as JSON) are written once here, so that each tool spells and handles
them the same way.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Callable, Optional, Sequence

from mmengine.config import Config, DictAction

from ..compat import cpu_distributed_cfg
from .cpu_heap import keep_freed_memory

#: the ``--launcher`` choices of mmdet's tools
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: what ``--keep-heap`` does, as its help says
KEEP_HEAP_HELP = ('keep freed memory in the process (glibc) instead of faulting fresh pages in '
                  'every step: faster CPU steps at large image sizes, resident memory stays at '
                  'the peak (mmkd_det.apis.keep_freed_memory)')
#: what a script says when ``--keep-heap`` cannot be honoured
NO_MALLOPT = '--keep-heap: the C library has no mallopt (not glibc)'


def doc_parser(doc: str) -> argparse.ArgumentParser:
    """A parser that describes a script by its docstring ``doc``.

    Args:
        doc (str): the script's ``__doc__``.

    Returns:
        argparse.ArgumentParser: its description is the docstring's first line,
        its epilog the whole docstring, printed as written (examples keep their
        line breaks).
    """
    return argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_cfg_options_arg(parser: argparse.ArgumentParser,
                        help: str = 'override config settings, key=value',
                        default: Optional[dict] = None) -> None:
    """Add ``--cfg-options key=value ...``, parsed by mmengine's ``DictAction``
    into a dict (``a=1 b.c=x`` gives ``{'a': 1, 'b.c': 'x'}``) for
    ``Config.merge_from_dict``.

    Args:
        parser (argparse.ArgumentParser): the script's parser.
        help (str): the option's help text.
        default (dict, optional): the value when the option is not given.
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=default, help=help)


def add_distiller_options_arg(parser: argparse.ArgumentParser, example: str) -> None:
    """Add ``--distiller-options key=value ...``: extra keyword arguments of the
    Distiller, a dict (empty by default).

    Args:
        parser (argparse.ArgumentParser): the script's parser.
        example (str): an example shown in the help, e.g. ``fuse_teacher_bn=False``.
    """
    parser.add_argument(
        '--distiller-options',
        nargs='+',
        action=DictAction,
        default={},
        help=f'extra Distiller arguments, e.g. {example}')


def add_teacher_ckpt_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--teacher-ckpt``: the teacher weights of a Distiller config,
    overriding its ``model.teacher_ckpt`` (default: the config's)."""
    parser.add_argument('--teacher-ckpt', help='override model.teacher_ckpt')


def add_distiller_config_args(
        parser: argparse.ArgumentParser,
        cfg_options_help: str = 'key=value overrides, as in tools/train.py') -> None:
    """Add what a tool that builds one Distiller from its config takes: the
    positional ``config``, ``--teacher-ckpt`` (:func:`add_teacher_ckpt_arg`)
    and ``--cfg-options`` (a dict, empty by default; with ``cfg_options_help``
    as its help)."""
    parser.add_argument('config', help='a distillation (Distiller) config')
    add_teacher_ckpt_arg(parser)
    add_cfg_options_arg(parser, cfg_options_help, default={})


def add_image_size_arg(parser: argparse.ArgumentParser,
                       help: str = 'image size (default 1333x800)') -> None:
    """Add ``--size H W`` (two ints), default ``[800, 1333]``: COCO's training
    scale, as ``(height, width)``."""
    parser.add_argument(
        '--size', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'), help=help)


def add_json_arg(parser: argparse.ArgumentParser,
                 help: str = 'also write the result to this JSON file') -> None:
    """Add ``--json PATH`` (default None), for :func:`write_json`."""
    parser.add_argument('--json', help=help)


def runner_parser(description: str, config_help: str,
                  work_dir_help: str) -> argparse.ArgumentParser:
    """The parser of the Runner scripts (``tools/train.py``, ``tools/test.py``)
    with the options they share, as in mmdet: the positional ``config``,
    ``--work-dir``, ``--cfg-options`` (:func:`add_cfg_options_arg`),
    ``--launcher`` and ``--local_rank`` (:func:`add_launcher_args`).

    Args:
        description (str): what the script does.
        config_help (str): the help of ``config``.
        work_dir_help (str): the help of ``--work-dir``.

    Returns:
        argparse.ArgumentParser: parse it with :func:`parse_runner_args`.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--overlay',
        nargs='+',
        default=[],
        metavar='FILE',
        help='config files merged over the config in order, before --cfg-options (e.g. '
        'the standard benchmark tier: configs/_base_/tiers/synthetic_standard.py)')
    add_cfg_options_arg(parser)
    add_launcher_args(parser)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[list] = None) -> argparse.Namespace:
    """Parse ``argv`` (default: the command line) with a :func:`runner_parser`
    and export ``LOCAL_RANK`` from it (:func:`set_local_rank`)."""
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """Add mmdet's ``--launcher`` (default ``none``) and ``--local_rank`` /
    ``--local-rank`` (default 0; see :func:`set_local_rank`)."""
    parser.add_argument('--launcher', choices=list(LAUNCHERS), default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` (read by mmengine's distributed setup) from the
    ``--local_rank`` option that ``torch.distributed.launch`` passes, unless the
    launcher (torchrun) has already set it."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


def finish_distributed() -> None:
    """End a distributed run in order: wait for every process, then destroy the
    process group. Without it a gloo worker can abort at interpreter exit
    (SIGABRT, "terminate called without an active exception") after a run that
    finished, so that ``torchrun`` reports a failure. Nothing when the process
    is not part of an initialised process group."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def add_keep_heap_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--keep-heap`` (a flag), for :func:`apply_keep_heap`."""
    parser.add_argument('--keep-heap', action='store_true', help=KEEP_HEAP_HELP)


def apply_keep_heap(enabled: bool, on_missing: str = 'exit') -> bool:
    """Keep freed memory in the process (:func:`keep_freed_memory`) when
    ``enabled`` (the ``--keep-heap`` flag).

    Args:
        enabled (bool): whether the user asked for it.
        on_missing (str): what to do where the C library has no ``mallopt``
            (not glibc): ``'exit'`` stops the script with that message (a
            measurement without it would not be the one asked for), ``'warn'``
            prints it and goes on (training is only slower).

    Returns:
        bool: whether the heap setting is in effect.
    """
    if on_missing not in ('exit', 'warn'):
        raise ValueError(f"on_missing must be 'exit' or 'warn', not {on_missing!r}")
    if not enabled:
        return False
    if keep_freed_memory():
        return True
    if on_missing == 'exit':
        sys.exit(f'{NO_MALLOPT}.')
    print(f'[mmkd_det] {NO_MALLOPT}; ignored.')
    return False


def write_json(result: Any, path: Optional[str]) -> None:
    """Write ``result`` to ``path`` as indented JSON, creating its folder;
    nothing when ``path`` is None or empty (``--json`` not given)."""
    if not path:
        return
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)


def read_json(path: str, valid: Callable[[Any], bool], what: str, fix: str) -> Any:
    """The JSON in ``path`` (parsed, nothing unpickled) if ``valid`` accepts it.

    Raises:
        ValueError: ``path`` cannot be read as JSON, or holds something else
            than ``what``; the message names the file and ends with ``fix``.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read it as JSON ({err}); {fix}') from None
    if not valid(data):
        raise ValueError(f'{path}: not {what}; {fix}')
    return data


def default_work_dir(cfg: Config, config_path: str, work_dir: Optional[str] = None) -> str:
    """The work dir by mmdet's rule: ``work_dir`` (``--work-dir``) if given,
    else the config's ``work_dir``, else ``./work_dirs/<config file name
    without extension>``."""
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir', None) is not None:
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def load_config(config_path: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None,
                overlays: Sequence[str] = ()) -> Config:
    """Load a config for a Runner as mmdet's ``tools/train.py`` and
    ``tools/test.py`` do.

    Args:
        config_path (str): the config file.
        cfg_options (dict, optional): ``--cfg-options``, merged into the config last.
        launcher (str): ``--launcher``, stored as ``cfg.launcher``.
        work_dir (str, optional): ``--work-dir``; see :func:`default_work_dir`.
        overlays (Sequence[str]): ``--overlay`` config files merged over the config in
            order (before ``cfg_options``), as if their contents were written at
            its end: dicts merge key by key (``_delete_=True`` replaces), lists and
            other values replace. The benchmark tiers are overlays
            (``configs/_base_/tiers/``). Without ``work_dir`` the default work dir
            is ``./work_dirs/<config>+<overlay>...`` (file names without
            extension), so that a tier's run never shares a folder with another's.

    Returns:
        Config: the config; with a launcher and no CUDA, adapted to CPU
        processes (gloo backend; ``mmkd_det.compat.cpu_distributed_cfg``).

    Raises:
        FileNotFoundError: an overlay file does not exist.
    """
    cfg = Config.fromfile(config_path)
    cfg.launcher = launcher
    for overlay in overlays:
        if not osp.isfile(overlay):
            raise FileNotFoundError(f'--overlay {overlay}: file not found (paths are relative '
                                    f'to the current directory, e.g. '
                                    f'configs/_base_/tiers/synthetic_standard.py).')
        cfg.merge_from_dict(Config.fromfile(overlay).to_dict())
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    name = '+'.join(osp.splitext(osp.basename(p))[0] for p in (config_path, *overlays))
    cfg.work_dir = default_work_dir(cfg, name + '.py', work_dir)
    if launcher != 'none':
        cpu_distributed_cfg(cfg)
    return cfg
