r"""PAD: Zhang, Lan, Dai, Zeng, Bai, Chang, Wei, "Prime-Aware Adaptive Distillation"
(ECCV 2020).

`Paper <https://arxiv.org/abs/2008.01458>`_ (ECCV 2020, pp. 658-674). No official code;
torchdistill (``yoshitomo-matsubara/torchdistill``, ``PADL2Loss`` and its
``VarianceBranch4PAD``) re-implements the classification setting.

PAD weights the samples of a distillation loss by a learned data uncertainty: each
student feature is read as the mean of a Gaussian around the teacher's, a variance
branch on the student predicts its variance :math:`\sigma^2`, and the squared error is
divided by :math:`\sigma^2` with a :math:`\log \sigma^2` penalty,

.. math::
    L_{PAD} = \frac{1}{N} \sum_{i} \Big( \frac{\| f^s_i - f^t_i \|^2}{\sigma_i^2}
              + \log \sigma_i^2 \Big)

(the Gaussian negative log-likelihood up to a constant and a factor 2). Samples the
student cannot fit (large error) get a large :math:`\sigma^2` and a small weight; the
"prime" samples it can fit keep a large one. :math:`\sigma_i^2` is learned, not
supervised: its optimum is the error itself.

Design: PAD is not a loss of its own in the paper's detection experiments but a
reweighting of another feature-imitation loss (Mimic and FGFI on Faster R-CNN,
VOC). :class:`PADLoss` therefore wraps an inner loss config (``loss=dict(type=
'MimicLoss', ...)`` or ``'FGFILoss'``) and reweights the unreduced squared errors
that the inner loss's ``elementwise`` method returns, keeping the inner loss's
RoIs / mask, adapter and normaliser (the :math:`1/N` above is the inner loss's
normaliser):

.. math::
    L = \lambda \sum_l \frac{1}{Z_l} \sum w_l \big( e_l\, e^{-s_l} + s_l \big),
    \qquad s = \log \sigma^2 = \mathrm{conv}_{1\times 1}(S)

with :math:`e_l = (S_l - T_l)^2` (adapted student, teacher), :math:`w_l` the inner
loss's mask, :math:`Z_l` its normaliser
(:func:`~mmkd_det.models.utils.reduce_element_errors`,
:class:`~mmkd_det.models.utils.VarianceBranch`). With :math:`s = 0` it is the inner
loss exactly, which is where the default zero-initialised branch starts.

Readings (the paper text was not available here; only its abstract, the review's
summary and torchdistill's classification code were read, so the following are
unverified against the paper and are options):

* ``granularity='location'`` (default): one :math:`\sigma^2` per feature vector (a
  location of an FPN level for FGFI, a bin of a pooled RoI for Mimic), shared by its
  channels; the term is :math:`\|d\|^2 e^{-s} + C s`, the Gaussian likelihood of the
  vector with an isotropic variance (the paper's "per sample" weighting).
  ``'element'``: one per channel and location (torchdistill's per-dimension
  variance, its loss the mean over dimensions of :math:`d^2 / \sigma^2 + \log
  \sigma^2`).
* Variance branch: a 1x1 conv on the adapted student features, shared by the FPN
  levels (torchdistill: a linear layer + BatchNorm on the student's embedding);
  ``log_var_bound`` bounds :math:`s` by :math:`b \tanh(z/b)` (unbounded by
  default); ``branch_init='zeros'`` starts at :math:`\sigma = 1`;
  ``detach_input`` stops the branch's gradient into the student.
* The numerical :math:`\epsilon` of torchdistill (:math:`e / (\epsilon + \sigma^2)`)
  is not used: :math:`e^{-s}` is exact.
"""
import inspect
from contextlib import contextmanager, nullcontext
from typing import Optional, Sequence

from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.uncertainty_weighting import VarianceBranch, reduce_element_errors
from .base_distill_loss import BaseDistillLoss, Shapes

#: extras PADLoss.forward accepts and hands to the inner loss where it takes them
_EXTRAS = ('gt_instances', 'student', 'teacher', 'batch_img_metas')


@MODELS.register_module()
class PADLoss(BaseDistillLoss):
    """Prime-aware adaptive reweighting of a feature-imitation loss (module docstring).

    Args:
        loss (dict): the inner loss config; its class must provide
            ``elementwise(s_feats, t_feats, **extras)`` returning
            :class:`~mmkd_det.models.utils.ElementErrors` (``MimicLoss``,
            ``FGFILoss``). Its ``inputs``, ``adapter`` and other options apply; its
            ``loss_weight`` is the default of this one's.
        granularity (str): 'location' (default) or 'element'.
        log_var_bound (float, optional): bound b of :math:`s`; None (default).
        branch_init (str): 'zeros' (default) or 'default'.
        detach_input (bool): variance branch on detached student features.
            Defaults to False.
        loss_weight (float, optional): λ; None (default) takes the inner loss's.
        inputs (dict, optional): overrides of the inner loss's inputs.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    default_adapter = None  # adapters belong to the inner loss

    def __init__(self,
                 loss: dict,
                 granularity: str = 'location',
                 log_var_bound: Optional[float] = None,
                 branch_init: str = 'zeros',
                 detach_input: bool = False,
                 loss_weight: Optional[float] = None,
                 inputs: Optional[dict] = None,
                 init_cfg=None):
        if not isinstance(loss, dict) or 'type' not in loss:
            raise TypeError(f'PADLoss: loss must be the config dict of the loss to reweight, '
                            f'e.g. loss=dict(type=\'MimicLoss\'); got {loss!r}.')
        if str(loss['type']) in ('PADLoss', 'mmkd_det.PADLoss'):
            raise ValueError('PADLoss: the inner loss cannot be PADLoss itself.')
        inner = MODELS.build(loss)
        method = getattr(inner, 'elementwise', None)
        if method is None:
            raise TypeError(f'PADLoss reweights per-element errors, but {type(inner).__name__} '
                            f'has no elementwise(...) method; wrap MimicLoss or FGFILoss (or '
                            f'give the loss such a method).')
        params = inspect.signature(method).parameters
        records = [n for n, p in params.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
        others = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n not in _EXTRAS]
        if records != ['s_feats', 't_feats'] or others:
            raise TypeError(f'PADLoss: {type(inner).__name__}.elementwise takes '
                            f'{list(params)}; PADLoss feeds s_feats, t_feats and the extras '
                            f'{list(_EXTRAS)} only.')
        super().__init__(
            loss_weight=inner.loss_weight if loss_weight is None else loss_weight,
            inputs=None,
            adapter=None,
            init_cfg=init_cfg)
        self.inner = inner
        self.inputs = dict(inner.inputs)
        self.inputs.update(inputs or {})
        self._extras = [n for n in params if n in _EXTRAS]
        self.branch_cfg = dict(
            granularity=granularity,
            bound=log_var_bound,
            init=branch_init,
            detach_input=detach_input)
        VarianceBranch(1, **self.branch_cfg)  # check the options now
        self.branch: Optional[VarianceBranch] = None

    def setup(self, shapes: Shapes, name: str = '') -> None:
        """The inner loss's setup (adapters), then the variance branch on the teacher's
        width (that of the adapted student features)."""
        self.inner.setup(shapes, name)
        t_arg = 't_feats'
        if not shapes.get(t_arg):
            raise ValueError(f'{name}: PADLoss needs the shapes of t_feats to size its '
                             f'variance branch; got {sorted(shapes)}.')
        self.branch = VarianceBranch(int(shapes[t_arg][0][1]), **self.branch_cfg)

    @contextmanager
    def student_context(self, student):
        """The inner loss's student context (e.g. Mimic's capture of the RoIs), if any."""
        ctx = getattr(self.inner, 'student_context', None)
        with (ctx(student) if ctx is not None else nullcontext()):
            yield

    def forward(self,
                s_feats: Sequence[Tensor],
                t_feats: Sequence[Tensor],
                *,
                gt_instances=None,
                student=None,
                teacher=None,
                batch_img_metas=None) -> Tensor:
        if self.branch is None:
            raise RuntimeError('PADLoss: the variance branch is built by setup(shapes) (the '
                               'Distiller calls it at build); call setup before the loss.')
        given = dict(
            gt_instances=gt_instances,
            student=student,
            teacher=teacher,
            batch_img_metas=batch_img_metas)
        terms = self.inner.elementwise(s_feats, t_feats, **{k: given[k] for k in self._extras})
        log_vars = self.branch(terms.student)
        return self.loss_weight * reduce_element_errors(terms, log_vars)
