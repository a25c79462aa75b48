r"""One-time calibration of each distillation loss to a share of the task gradient.

Not a paper's method: an mmkd_det option of the
:class:`~mmkd_det.models.distillers.Distiller` (``loss_calibration=dict(...)``,
off by default, so the shipped configs keep their papers' ``loss_weight``).
Related work balances gradient norms *continuously* (GradNorm: Chen,
Badrinarayanan, Lee, Rabinovich, "GradNorm: Gradient Normalization for Adaptive
Loss Balancing in Deep Multitask Networks", ICML 2018,
https://arxiv.org/abs/1711.02257); here each factor is measured once, over a
window of iterations, and then kept fixed (and stored in the checkpoint).

Options: ``dict(share, window=20, at_iter=None, per='loss', terms=None,
max_factor=None)``.

For calibration unit :math:`k` and the task loss :math:`L_{task}` (the sum of
the student's losses, as mmengine's ``parse_losses`` sums every key containing
``'loss'``), on the student detector's trainable parameters :math:`\Theta_k`
that :math:`L_k`'s gradient reaches:

.. math::
    g_k = \big\| \nabla_{\Theta_k} L_k \big\|_2, \qquad
    g_{task,k} = \big\| \nabla_{\Theta_k} L_{task} \big\|_2, \qquad
    c_k = s \, \frac{\tfrac{1}{n}\sum_{i} g_{task,k}^{(i)}}{\tfrac{1}{n}\sum_i g_k^{(i)}}

over the :math:`n` measured iterations :math:`i` (``window``; the sums are
averaged over the ranks first), with :math:`s` = ``share``. Afterwards the
student trains on :math:`L_{task} + \sum_k \lambda(t)\, c_k L_k`
(:math:`\lambda(t)`: the warm-up / stop schedule), so that
:math:`\|\nabla_{\Theta_k} c_k L_k\| = s \, \|\nabla_{\Theta_k} L_{task}\|` on
average over the window.

``max_factor`` (default None: no bound) caps each factor,
:math:`c_k = \min(c_k, c_{max})`, and the log names every factor it capped
with its uncapped value. Why: the window lies early in training, and a loss
whose gradient is then tiny gets a huge factor. On the RTMDet deployment pair
the head-level terms of FRS and logit KD measured 0.013 and 0.27 against task
gradients of 9.3 and 4.4 (factors 470-695 and 16-25), and those students
collapsed later in training (``docs/loss_calibration.md``). A cap keeps such a
loss near its measured share without letting one early reading multiply it by
hundreds. Not part of any paper.

The unit :math:`L_k` (``per``):

* ``per='loss'`` (default): one configured distillation loss; the terms of a
  loss that returns a dict (e.g. ``SKDLoss``: ``loss_at``, ``loss_am``,
  ``loss_nld``) are summed into one :math:`L_k`, so one factor scales them all
  and the paper's ratio between them (its :math:`\alpha, \beta, \gamma`,
  ``loss_weight``) is kept. Use it whenever the method's own balance is wanted,
  i.e. by default.
* ``per='term'``: every logged term is its own unit, with its own
  :math:`\Theta_k` and its own :math:`g_{task,k}` on it: ``<loss name>.<key>``
  for each key of a loss that returns a dict, the loss name for a loss that
  returns a tensor. Use it when a method's terms are out of balance on a new
  detector pair: for structured KD on our pairs the attention-masked term's
  gradient measured about 34 times the task gradient and the other two about
  0.03 and 0.16 times, so one factor for the sum leaves AT and NLD negligible.
  **This is a deviation from the papers**: each term is brought to the same
  ``share``, so the paper's internal term ratios (:math:`\alpha, \beta, \gamma`
  and every other weight between the terms of one loss) cancel out, as
  ``loss_weight`` does; report it with the results.

  ``per='term'`` needs ``terms``: the list of these logged keys (what the log
  shows after ``distill.``), e.g. ``terms=['loss_skd.loss_at',
  'loss_skd.loss_am', 'loss_skd.loss_nld']``, every term of every configured
  loss. Design: the keys of a dict-returning loss are only known after its
  first forward, but the factor buffer's shape must be known when the model is
  built (a resumed run loads the checkpoint, and ``fit_checkpoint`` compares
  the shapes, before any forward), so the list is given in the config: the
  factors follow its order, and every step checks that the losses return
  exactly these terms (an error names the ones they return, to copy into the
  config). Listing them also keeps a term that a loss returns conditionally
  from changing the factors silently.

Why :math:`\Theta_k` and not all student parameters: a feature loss on the FPN
never reaches the detection head, whose parameters carry a large part of the
task gradient; comparing :math:`g_k` with the task gradient over the whole
student would under-weight every loss that acts on fewer parameters (and differ
with the head's size). On :math:`\Theta_k` both gradients pull on the same
parameters. The losses' own parameters (adapters, connectors) are not student
parameters and are never in :math:`\Theta_k`.

Consequences: ``c_k`` multiplies the configured loss (or term), ``loss_weight``
included, so with calibration a loss's ``loss_weight`` cancels out of its
strength (it is logged for reference); the effective weight is
``loss_weight * c_k``. The factors are logged as ``distill_factor.<unit>``,
the unit's name with ``'loss'`` removed from each dot-separated part
(``loss_frs_fpn`` -> ``distill_factor.frs_fpn``, ``loss_skd.loss_at`` ->
``distill_factor.skd.at``).

Cost: every measured iteration takes ``1 + K`` extra gradient computations
(``torch.autograd.grad``, graph retained) for ``K`` units (losses, or terms
with ``per='term'``) and one host synchronisation (the non-finite check of the
norms); fixing the factors takes one all-reduce and one synchronisation. After
that a step costs one multiply per term. Limitations: the extra gradient
computations need autograd to run inside the forward (no reentrant activation
checkpointing, ``with_cp=True``, in the student); under fp16 mixed precision
the norms are computed without loss scaling.
"""
import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import print_log
from torch import nn

from mmkd_det.registry import suggestion
from .schedule import HOOK_CFG

#: the keys of ``loss_calibration`` and their defaults (``share`` has none).
CALIBRATION_DEFAULTS = dict(
    share=None, window=20, at_iter=None, per='loss', terms=None, max_factor=None)
#: the values of ``per``: one factor per configured loss, or per logged term.
PER_MODES = ('loss', 'term')
#: prefix of the logged factors (no ``'loss'`` in it: mmengine sums those keys).
FACTOR_LOG_PREFIX = 'distill_factor.'


def factor_log_key(name: str) -> str:
    """``distill_factor.<name without 'loss'>``: a logged key that mmengine's
    ``parse_losses`` does not add to the total (it sums keys containing ``'loss'``).
    ``'loss'`` is removed from each dot-separated part of ``name`` (a loss name,
    or a term key ``<loss name>.<key>``): ``loss_skd.loss_at`` -> ``skd.at``."""
    parts = [p.replace('loss', '').strip('_') or 'distill' for p in name.split('.')]
    return FACTOR_LOG_PREFIX + '.'.join(parts)


def build_calibration(cfg: Optional[Mapping], losses: Mapping[str, nn.Module],
                      warmup_iters: int) -> Optional['LossCalibration']:
    """A :class:`LossCalibration` from the Distiller's ``loss_calibration``
    (None: off), with its options checked.

    Args:
        cfg (dict, optional): ``dict(share=..., window=20, at_iter=None,
            per='loss', terms=None, max_factor=None)``.
        losses (dict): the Distiller's ``distill_losses`` (name -> module).
        warmup_iters (int): the Distiller's; the default ``at_iter``.

    Raises:
        TypeError: ``cfg`` is not a dict, or has unknown keys (the closest valid
            ones named).
        ValueError: a bad value (the option named).
    """
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise TypeError(f'loss_calibration must be None or a dict like '
                        f'dict(share=0.5, window=20, at_iter=None), got {cfg!r}.')
    valid = list(CALIBRATION_DEFAULTS)
    unknown = [k for k in cfg if k not in CALIBRATION_DEFAULTS]
    if unknown:
        raise TypeError('loss_calibration got unknown key' + ('s ' if len(unknown) > 1 else ' ') +
                        '; '.join(f'{k!r} (did you mean {suggestion(k, valid, 2)}?)'
                                  for k in unknown) + f'. Valid keys: {", ".join(valid)}.')
    opts = {**CALIBRATION_DEFAULTS, **cfg}
    return LossCalibration(
        loss_names=list(losses),
        loss_weights=[getattr(m, 'loss_weight', None) for m in losses.values()],
        share=opts['share'],
        window=opts['window'],
        at_iter=warmup_iters if opts['at_iter'] is None else opts['at_iter'],
        at_iter_is_default=opts['at_iter'] is None,
        per=opts['per'],
        terms=opts['terms'],
        max_factor=opts['max_factor'])


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_number(value) -> bool:
    """A finite int or float > 0 (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def _norm(grads: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    r""":math:`\sqrt{\sum_j \|g_j\|_2^2}` of the tensors ``grads`` in float32
    (per-tensor norms first, for range); 0 for none."""
    if not grads:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def _term_units(terms, loss_names: Sequence[str]) -> List[str]:
    """The parent loss of each ``terms`` entry (``per='term'``), checked.

    Raises:
        ValueError: ``terms`` is not a non-empty list of distinct strings, names
            a loss that is not configured, or leaves a configured loss out.
    """
    example = ('e.g. terms=[\'loss_skd.loss_at\', \'loss_skd.loss_am\', '
               '\'loss_skd.loss_nld\']: <loss name>.<key> for each key of a loss that returns '
               'a dict, the loss name for one that returns a tensor (the keys the log shows '
               'after "distill.")')
    if not isinstance(terms, (list, tuple)) or not terms \
            or not all(isinstance(t, str) and t for t in terms):
        raise ValueError(f'loss_calibration per=\'term\' needs terms, the list of the logged '
                         f'distillation terms, one factor each ({example}); got {terms!r}.')
    dup = sorted({t for t in terms if list(terms).count(t) > 1})
    if dup:
        raise ValueError(f'loss_calibration terms lists {dup} more than once.')
    parents = []
    for term in terms:
        parent, dot, key = term.partition('.')
        if parent not in loss_names or (dot and not key):
            raise ValueError(
                f'loss_calibration terms: {term!r} is not a term of a configured loss '
                f'(losses: {list(loss_names)}; did you mean {suggestion(term, loss_names, 2)}?). '
                f'Each entry is {example}.')
        parents.append(parent)
    for name in loss_names:
        forms = {t.partition('.')[1] for t, p in zip(terms, parents) if p == name}
        if not forms:
            raise ValueError(f'loss_calibration terms lists no term of the loss {name!r}: list '
                             f'every term of every distillation loss ({example}).')
        if len(forms) > 1:
            raise ValueError(f'loss_calibration terms lists the loss {name!r} both alone and '
                             f'with keys ({[t for t in terms if t.partition(".")[0] == name]}); '
                             f'a loss returns either a tensor or a dict.')
    return parents


class LossCalibration(nn.Module):
    """Measure each distillation loss's (or term's) gradient share once, then scale it.

    The factors are buffers (``factors``, one per unit: per loss in
    ``distill_losses`` order, or per term in ``terms`` order; and the flag
    ``calibrated``), so they are in the Distiller's ``state_dict`` and every
    checkpoint: a resumed run whose checkpoint holds them uses them and never
    measures again. The buffer's shape is known at construction (``terms`` is
    given in the config with ``per='term'``), so a checkpoint loads, and is
    checked, like any other tensor. A checkpoint without them (older runs;
    mmengine's non-strict load warns about the two missing keys) leaves this
    module uncalibrated: it measures as configured, or, when it is already past
    ``at_iter``, over the next ``window`` iterations (logged). A resume in the
    middle of the window also restarts the measurement (the partial sums are not
    in the checkpoint; they would be DDP-broadcast from rank 0 as buffers), so
    it ends ``window`` measured iterations later. The factors follow the units'
    order: resuming with the losses or ``terms`` renamed or reordered (same
    number) is not detected; a different number is a shape error.

    Phases, by the iteration ``i`` of the Distiller's schedule:

    * ``i < at_iter - window``: :meth:`active` is False; the Distiller trains
      the student on its task losses alone and does not run the teacher.
    * measuring (``i >= at_iter - window``, fewer than ``window`` measured
      iterations or ``i < at_iter``): the teacher and the losses run, each
      unit's gradient norms are accumulated and its factor this iteration is 0
      (the terms are logged as 0: what is applied to the student).
    * the first iteration at or after ``at_iter`` with ``window`` measured:
      the sums are averaged over ranks, the factors fixed and logged; from then
      on each unit is multiplied by its factor (and the schedule's scale).

    Args:
        loss_names (Sequence[str]): the distillation losses, in order.
        loss_weights (Sequence[float | None]): their ``loss_weight``, for the log.
        share (float): target ratio of each unit's gradient norm to the task
            loss's, on the parameters the unit reaches (> 0).
        window (int): measured iterations, averaged (>= 1).
        at_iter (int): iteration at which the factors are fixed; measured over
            ``[at_iter - window, at_iter)`` (>= ``window``).
        at_iter_is_default (bool): ``at_iter`` came from ``warmup_iters`` (for
            the error message).
        per (str): ``'loss'`` (default): one factor per loss, its terms summed
            (the paper's ratio between them kept); ``'term'``: one per logged
            term, a deviation from the papers (module docstring).
        terms (Sequence[str], optional): with ``per='term'`` (and only then,
            required): every logged term, ``<loss name>.<key>`` of a loss that
            returns a dict, the loss name of one that returns a tensor.
        max_factor (float, optional): upper bound of every factor (> 0); None:
            unbounded (module docstring).
    """

    def __init__(self,
                 loss_names: Sequence[str],
                 loss_weights: Sequence[Optional[float]],
                 share: float,
                 window: int = 20,
                 at_iter: int = 0,
                 at_iter_is_default: bool = False,
                 per: str = 'loss',
                 terms: Optional[Sequence[str]] = None,
                 max_factor: Optional[float] = None):
        super().__init__()
        if not _is_positive_number(share):
            raise ValueError(f'loss_calibration share must be a number > 0 (the target ratio '
                             f'of each distillation gradient norm to the task one), got '
                             f'{share!r}.')
        if max_factor is not None and not _is_positive_number(max_factor):
            raise ValueError(f'loss_calibration max_factor must be None (no bound) or a number '
                             f'> 0 (the largest factor a loss may get), got {max_factor!r}.')
        if not _is_int(window) or window < 1:
            raise ValueError(f'loss_calibration window must be an integer >= 1 (iterations '
                             f'averaged), got {window!r}.')
        if not _is_int(at_iter) or at_iter < window:
            source = (f'at_iter defaults to the Distiller\'s warmup_iters={at_iter}'
                      if at_iter_is_default else f'at_iter={at_iter!r}')
            raise ValueError(
                f'loss_calibration: {source}, but the factors are measured over the window '
                f'[at_iter - window, at_iter) with window={window}, which must start at '
                f'iteration 0 or later. Set loss_calibration at_iter (an integer >= window) '
                f'or warmup_iters >= window, or a smaller window.')
        if not isinstance(per, str) or per not in PER_MODES:
            hint = suggestion(per, PER_MODES, 1) if isinstance(per, str) else 'none'
            raise ValueError(
                f'loss_calibration per must be \'loss\' (one factor per distillation loss, '
                f'its terms summed; the default) or \'term\' (one factor per logged term, with '
                f'terms=[...]), got {per!r}' +
                ('.' if hint == 'none' else f' (did you mean {hint}?).'))
        if per == 'loss':
            if terms is not None:
                raise ValueError(f'loss_calibration terms={terms!r} is only read with '
                                 f'per=\'term\' (one factor per term); set per=\'term\' or '
                                 f'remove terms.')
            units, parents = list(loss_names), list(loss_names)
        else:
            parents = _term_units(terms, loss_names)
            units = list(terms)
        keys = [factor_log_key(n) for n in units]
        clash = sorted({k for k in keys if keys.count(k) > 1})
        if clash:
            raise ValueError(f'loss_calibration: the {per}s {units} give the same logged '
                             f'factor key {clash} once "loss" is removed; rename one.')
        self.per = per
        self.loss_names = list(loss_names)
        self.loss_weights = list(loss_weights)
        weight_of = dict(zip(self.loss_names, self.loss_weights))
        #: the calibrated units (loss names, or term keys), their losses and weights
        self.units, self.unit_losses = units, parents
        self.unit_weights = [weight_of[p] for p in parents]
        self._index = {u: i for i, u in enumerate(units)}
        self.log_keys = keys
        self.share, self.window, self.at_iter = float(share), int(window), int(at_iter)
        self.max_factor = None if max_factor is None else float(max_factor)
        self.register_buffer('factors', torch.zeros(len(self.units)))
        self.register_buffer('calibrated', torch.zeros((), dtype=torch.int64))
        # host mirror of `calibrated`: no device read in the step
        self._fixed = False
        self._reset_sums()

    def _reset_sums(self) -> None:
        self._sums: Optional[torch.Tensor] = None  # (K, 2): sum of g_k, g_task,k
        self._count = 0
        self._late_logged = False

    @property
    def fixed(self) -> bool:
        """Whether the factors are fixed (measured here or loaded)."""
        return self._fixed

    def extra_repr(self) -> str:
        return (f'share={self.share}, window={self.window}, at_iter={self.at_iter}, '
                f'max_factor={self.max_factor}, per={self.per!r}, {self.per}s={self.units}')

    # ------------------------------------------------------------------ step
    def active(self, iter: Optional[int]) -> bool:
        """Whether the teacher and the losses run at iteration ``iter`` (False:
        before the measurement window, train on the task losses alone).

        Raises:
            RuntimeError: ``iter`` is None (nothing set the training progress).
        """
        if self._fixed:
            return True
        if iter is None:
            raise RuntimeError(
                f'The Distiller has loss_calibration (factors fixed at iteration '
                f'{self.at_iter}), but nothing set the training progress. In a Runner, add '
                f'{HOOK_CFG} to custom_hooks (configs/_base_/distill_runtime.py has it); when '
                f'calling the model yourself, call model.set_progress(iter=..., epoch=...) '
                f'first.')
        return iter >= self.at_iter - self.window

    def _check_terms(self, terms: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """``per='term'``: the losses returned exactly the configured ``terms``
        (Python only, no device read).

        Raises:
            ValueError: a term is missing or not configured (the returned ones named).
        """
        if self.per == 'loss':
            return
        got = [k for named in terms.values() for k in named]
        if len(got) == len(self.units) and all(k in self._index for k in got):
            return
        missing = [u for u in self.units if u not in got]
        extra = [k for k in got if k not in self._index]
        raise ValueError(
            f'loss_calibration per=\'term\': the distillation losses returned the terms {got}, '
            f'but terms={self.units} (missing: {missing}, not configured: {extra}). Set '
            f'loss_calibration terms to the terms the losses return (a loss whose terms depend '
            f'on its options, e.g. SKDLoss with a weight of 0, omits that term).')

    def factors_now(self, iter: int, terms: Mapping[str, Mapping[str, torch.Tensor]],
                    task_loss: Callable[[], torch.Tensor], student: nn.Module) -> Dict[str, object]:
        """Each loss's factor at iteration ``iter`` (call after :meth:`active`).

        While measuring: accumulates the gradient norms of this step and returns
        0 for every loss; at the fixing iteration: fixes the factors; then:
        with ``per='loss'`` returns the factor buffers (0-dim tensors, no host
        read); with ``per='term'`` multiplies each term of ``terms`` **in
        place** by its own factor and returns 1 for every loss (the Distiller
        multiplies every term of a loss by the loss's returned factor).

        Args:
            iter (int): the current iteration.
            terms (dict): loss name -> {logged key: scalar term}, in
                ``loss_names`` order (unweighted by the schedule); with
                ``per='term'`` its terms are scaled in place once fixed.
            task_loss (callable): returns the student's total task loss (called
                only while measuring).
            student (nn.Module): the student detector (its trainable parameters).

        Raises:
            ValueError: ``per='term'`` and the losses returned other terms than
                ``terms``.
        """
        self._check_terms(terms)
        if not self._fixed and iter >= self.at_iter and self._count >= self.window:
            self._fix(iter)
        if self._fixed:
            if self.per == 'loss':
                return {name: self.factors[i] for i, name in enumerate(self.loss_names)}
            for named in terms.values():
                for key in list(named):
                    named[key] = named[key] * self.factors[self._index[key]]
            return dict.fromkeys(self.loss_names, 1.0)
        if iter >= self.at_iter and not self._late_logged:
            self._late_logged = True
            print_log(
                f'Loss calibration: no calibration factors at iteration {iter} >= at_iter='
                f'{self.at_iter} (a checkpoint without them, or a resume inside the window): '
                f'measuring over {self.window - self._count} more iteration(s), without '
                f'distillation until then.',
                logger='current')
        self._measure(iter, terms, task_loss(), student)
        return dict.fromkeys(self.loss_names, 0.0)

    def log_vars(self) -> Dict[str, torch.Tensor]:
        """``distill_factor.<unit>``: the fixed factors for the training log (empty
        before); keys without ``'loss'``, so mmengine does not add them to the loss."""
        if not self._fixed:
            return {}
        return {k: self.factors[i].detach() for i, k in enumerate(self.log_keys)}

    def factors_dict(self) -> Dict[str, Optional[float]]:
        """``{unit: factor}`` (units: the loss names, or the ``terms`` with
        ``per='term'``), None for every unit before calibration (reads the device)."""
        if not self._fixed:
            return dict.fromkeys(self.units)
        return dict(zip(self.units, self.factors.tolist()))

    # ----------------------------------------------------------- measurement
    def _unit_values(self, terms: Mapping[str, Mapping[str, torch.Tensor]]) -> list:
        """:math:`L_k` of each unit, in ``units`` order: a loss's terms summed
        (``per='loss'``), or one term (``per='term'``)."""
        if self.per == 'loss':
            return [sum(t.mean() for t in terms[name].values()) for name in self.loss_names]
        flat = {k: v for named in terms.values() for k, v in named.items()}
        return [flat[u].mean() for u in self.units]

    def grad_norms(self, terms: Mapping[str, Mapping[str, torch.Tensor]], task: torch.Tensor,
                   student: nn.Module) -> torch.Tensor:
        """``(K, 2)``: :math:`g_k` and :math:`g_{task,k}` of this step (module
        docstring) for each unit ``k``, each on the student parameters unit
        ``k``'s gradient reaches.

        Raises:
            RuntimeError: gradients are disabled (the losses have no graph).
        """
        if not task.requires_grad:
            raise RuntimeError('Loss calibration measures gradients, but the task loss has '
                               'no graph: call the Distiller in training with gradients '
                               'enabled (not under torch.no_grad()).')
        params = [p for p in student.parameters() if p.requires_grad]
        task_grads = torch.autograd.grad(task, params, retain_graph=True, allow_unused=True)
        rows: List[torch.Tensor] = []
        for unit in self._unit_values(terms):
            grads = torch.autograd.grad(unit, params, retain_graph=True, allow_unused=True) \
                if isinstance(unit, torch.Tensor) and unit.requires_grad else [None] * len(params)
            reached = [i for i, g in enumerate(grads) if g is not None]
            rows.append(
                torch.stack([
                    _norm([grads[i] for i in reached], task.device),
                    _norm([task_grads[i] for i in reached if task_grads[i] is not None],
                          task.device)
                ]))
        return torch.stack(rows)

    def _measure(self, iter: int, terms, task: torch.Tensor, student: nn.Module) -> None:
        norms = self.grad_norms(terms, task, student)
        if not bool(torch.isfinite(norms).all()):  # the window's one host sync
            bad = [
                f'{"the task loss on the parameters of " if j else ""}{name} '
                f'({"task" if j else "distillation"} gradient norm {v})'
                for name, row in zip(self.units, norms.tolist()) for j, v in enumerate(row)
                if not math.isfinite(v)
            ]
            raise FloatingPointError(
                f'Loss calibration at iteration {iter}: non-finite gradient norm of '
                f'{"; ".join(bad)}. Check the teacher checkpoint and the loss inputs, or '
                f'measure later (loss_calibration at_iter).')
        self._sums = norms if self._sums is None else self._sums + norms
        self._count += 1

    def _fix(self, iter: int) -> None:
        """Average the sums over ranks, set the factors, log them."""
        sums = self._sums.clone()
        all_reduce(sums, op='mean')  # no-op when not distributed; same on every rank
        means = (sums / self._count).tolist()
        factors, lines = [], []
        for name, parent, weight, (g_k, g_task) in zip(self.units, self.unit_losses,
                                                       self.unit_weights, means):
            if g_k <= 0 or g_task <= 0:
                what = 'its own gradient on the student' if g_k <= 0 else \
                    "the task loss's gradient on the student parameters it reaches"
                raise ValueError(
                    f'Loss calibration: distillation {self.per} {name!r} cannot be calibrated: '
                    f'{what} is 0 over the window (mean g_k={g_k:.4g}, g_task={g_task:.4g}). '
                    f'Check that its inputs are student records, or remove it.')
            raw = self.share * g_task / g_k
            factors.append(raw if self.max_factor is None else min(raw, self.max_factor))
            of = '' if parent == name else f' of {parent}'
            capped = f', capped from {raw:.6g} by max_factor' if factors[-1] < raw else ''
            lines.append(f'{name}: factor {factors[-1]:.6g} (mean grad norm {g_k:.4g}, task '
                         f'{g_task:.4g} on the same parameters, loss_weight{of} {weight}'
                         f'{capped})')
        self.factors.copy_(torch.tensor(factors, dtype=self.factors.dtype))
        self.calibrated.fill_(1)
        self._fixed = True
        print_log(
            f'Loss calibration ({self.per}) fixed at iteration {iter} (share {self.share}, mean '
            f'over {self._count} iteration(s) x {get_world_size()} rank(s)): ' + '; '.join(lines),
            logger='current')
        self._reset_sums()

    # ------------------------------------------------------------ checkpoint
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self._reset_sums()
        if prefix + 'calibrated' in state_dict:
            self._fixed = bool(self.calibrated)  # one host read, at load time
        elif not self._fixed:
            print_log(
                f'Loss calibration: the loaded state dict has no {prefix}calibrated / '
                f'{prefix}factors (a checkpoint of a run without loss_calibration): the '
                f'factors will be measured over iterations '
                f'[{self.at_iter - self.window}, {self.at_iter}).',
                logger='current')
