"""Registries of mmkd_det: children of mmdet's, so every mmdet type resolves too.

Configs set ``default_scope = 'mmkd_det'``; our types and all mmdet (and mmengine)
types are then found without prefixes or ``custom_imports``.
"""
import difflib
import inspect
import re
from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional, Set

from mmdet import registry as mmdet_registry
from mmengine.registry import Registry

_NODES = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS',
          'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS',
          'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
          'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS')

_LOCATIONS = {
    'MODELS': ['mmkd_det.models'],
    'HOOKS': ['mmkd_det.engine'],
    'DATASETS': ['mmkd_det.datasets'],
}

# The other registries hold only mmdet's and mmengine's types (registered below), so
# their location is this module. It must not be empty: mmengine treats a package it
# knows by name (mmkd_det is made known for `mmkd_det::` config names) that sets no
# location as a pre-0.7 one, and imports `<package>.utils` instead, warning it is absent.
for _name in _NODES:
    globals()[_name] = Registry(
        _name.lower(),
        parent=getattr(mmdet_registry, _name),
        scope='mmkd_det',
        locations=_LOCATIONS.get(_name, ['mmkd_det.registry']))

# the registries only (tests iterate it); the suggestion helpers below are imported by name
__all__ = list(_NODES)

# mmdet registers its datasets, metrics, hooks and visualizers only when their
# packages are imported; our child registries look them up, so import them now.
from mmdet.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=False)

# ---------------------------------------------------------------- suggestions
# Close-name suggestions for misspelled registry types and keyword arguments: the one
# helper (:func:`suggestion`) for every "did you mean" message of mmkd_det.


def close_names(name: str, candidates: Iterable[str], n: int = 5) -> List[str]:
    """Up to ``n`` of ``candidates`` that look like ``name`` (``difflib``), best first.

    When none is close enough, candidates sharing the first dotted component of
    ``name`` (``'bbox_head.cls'`` -> ``'bbox_head.*'``) are returned instead.

    Args:
        name (str): The misspelled name.
        candidates (Iterable[str]): Valid names.
        n (int): At most this many names. Defaults to 5.

    Returns:
        List[str]: Close names, possibly empty.
    """
    candidates = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n, 0.5)]
    if not close:
        head = name.split('.')[0]
        close = [c for c in candidates if c.split('.')[0] == head][:n]
    return close


def suggestion(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """``"'a', 'b'"`` naming the :func:`close_names` of ``name``, or ``'none'``."""
    close = close_names(name, candidates, n)
    return ', '.join(repr(c) for c in close) if close else 'none'


def registered_types(registry: Registry, scoped: bool = False) -> List[str]:
    """Every type name ``registry`` resolves: its own, then its parents' (mmdet,
    mmengine); with ``scoped``, written with their scope (``'mmdet.FocalLoss'``)."""
    names, node = [], registry
    while node is not None:
        names += [f'{node.scope}.{key}' if scoped else key for key in node.module_dict]
        node = node.parent
    return list(dict.fromkeys(names))


def type_suggestion(registry: Registry, obj_type: str) -> str:
    """:func:`suggestion` of registered types for ``obj_type``, written with a scope
    when ``obj_type`` has one."""
    return suggestion(obj_type, registered_types(registry, scoped='.' in obj_type))


def check_type(registry: Registry, cfg: dict, what: str) -> type:
    """Return the class of ``cfg['type']`` or raise naming the closest types.

    Args:
        registry (Registry): Where the type is looked up (with its parents).
        cfg (dict): A config with a ``type``.
        what (str): The config's place, for the message (e.g.
            ``"distill_losses['loss_fgd']"``).

    Returns:
        type: The registered class (or the class given as ``type``).

    Raises:
        KeyError: no ``type``, or one no registry in the chain knows.
    """
    if 'type' not in cfg:
        raise KeyError(f'{what} has no `type`; set one, e.g. type=...')
    obj_type = cfg['type']
    if not isinstance(obj_type, str):
        return obj_type
    registry.import_from_location()
    obj_cls = registry.get(obj_type)
    if obj_cls is None:
        raise KeyError(f'{what}: unknown type {obj_type!r} (not in the {registry.scope} '
                       f'{registry.name} registry nor its parents). Close names: '
                       f'{type_suggestion(registry, obj_type)}. Fix `type` in '
                       f'the config (or import the module that registers it).')
    return obj_cls


def accepted_kwargs(obj_cls: type) -> Optional[Set[str]]:
    """Keyword arguments ``obj_cls(...)`` accepts, following ``**kwargs`` that an
    ``__init__`` passes on to its base classes; None if any is open-ended."""
    accepted: Set[str] = set()
    for klass in obj_cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            return None  # an __init__ that takes **kwargs and passes none on
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        accepted.update(p.name for p in params
                        if p.name != 'self' and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted
    return None


def check_kwargs(obj_cls: type, kwargs: Iterable[str], what: str) -> None:
    """Raise :class:`TypeError` naming keys of ``kwargs`` that ``obj_cls`` does
    not accept and the closest accepted ones (nothing when unknowable)."""
    accepted = accepted_kwargs(obj_cls)
    if accepted is None:
        return
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f'{what}: {obj_cls.__name__} got unknown argument'
                        f'{"s" if len(unknown) > 1 else ""} ' +
                        '; '.join(f'{k!r} (did you mean {suggestion(k, sorted(accepted), 3)}?)'
                                  for k in unknown) +
                        f'. Valid arguments: {", ".join(sorted(accepted))}.')


def build_checked(registry: Registry, cfg: dict, what: str):
    """``registry.build(cfg)`` after :func:`check_type` and :func:`check_kwargs`,
    so that a misspelled type or key is named with its closest valid names."""
    obj_cls = check_type(registry, cfg, what)
    check_kwargs(obj_cls, [k for k in cfg if k != 'type'], what)
    return registry.build(cfg)


_UNKNOWN_TYPE = re.compile(r'`?(\S+?)`? is not in the (\S+)::(.+?) registry')


def _registries_by_scope_name() -> dict:
    """``(scope, name) -> registry`` for ours and every ancestor of ours."""
    table = {}
    for node_name in _NODES:
        node = globals()[node_name]
        while node is not None:
            table.setdefault((node.scope, node.name), node)
            node = node.parent
    return table


@contextmanager
def type_suggestions(what: str) -> Iterator[None]:
    """Add the closest registered types to mmengine's "X is not in the
    <scope>::<name> registry" :class:`KeyError` raised in this block, at any
    depth of a nested build (a backbone, a head's loss, an assigner ...).

    Args:
        what (str): what was being built, for the message (e.g. ``'student'``).
    """
    try:
        yield
    except KeyError as err:
        text = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
        found = _UNKNOWN_TYPE.search(text)
        registry = found and _registries_by_scope_name().get((found[2], found[3]))
        if registry is None or 'Close names:' in text:
            raise
        raise KeyError(f'{what}: unknown type {found[1]!r}. Close names: '
                       f'{type_suggestion(registry, found[1])}. Fix that `type` '
                       f'in the config. ({text})') from None
