r"""Class-wise instance-feature banks and prototype selection shared by a teacher and
a student (the prototype generation module, PGM, of ODGK: Tang et al., "Distilling
Object Detectors with Global Knowledge", ECCV 2022; authors' code
``https://github.com/hikvision-research/DAVAR-Lab-ML``).

Shape shorthand: ``C`` classes, ``M`` instances kept per class, ``D_a`` / ``D_b``
the feature widths of the two detectors (teacher / student), ``T`` prototypes per
class.

* :class:`ClassFeatureBank` keeps, per class, the last ``M`` instance features of
  both detectors (the same instances, row for row), written without host
  synchronisation.
* :func:`density_candidates` keeps the instances whose density (a Gaussian kernel
  of the cosine distance) lies above a quantile in both spaces.
* :func:`select_prototypes` picks ``T`` instances per class by a joint matching
  pursuit in the two spaces: greedily, the candidate whose one-atom fit of the
  residuals of all instances, with coefficients tied by a penalty ``alpha``, leaves
  the smallest error

  .. math::
      k^* = \arg\min_{k \in \Gamma} \sum_n \big\| r^a_n - w^a_{kn} a_k \big\|^2
            + \big\| r^b_n - w^b_{kn} b_k \big\|^2
            + \alpha (w^a_{kn} - w^b_{kn})^2

  with the minimising coefficients in closed form (unit atoms :math:`a_k, b_k`,
  :math:`i^a_{kn} = \langle a_k, r^a_n \rangle`)

  .. math::
      w^a_{kn} = \frac{\alpha (i^a_{kn} + i^b_{kn}) + i^a_{kn}}{1 + 2\alpha}, \qquad
      w^b_{kn} = \frac{\alpha (i^a_{kn} + i^b_{kn}) + i^b_{kn}}{1 + 2\alpha},

  then :math:`r^a_n \leftarrow r^a_n - w^a_{k^*n} a_{k^*}` (same for ``b``). The
  paper states the PGM as this regularised reconstruction of both feature sets by
  shared prototypes (dictionary learning); the candidate set, the density filter
  (``sigma`` = 0.1, 40 % quantile) and ``alpha`` = 10 are the authors' code's.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class ClassFeatureBank:
    """Last ``size`` instance features per class of two feature spaces.

    Not an ``nn.Module``: the tensors are created on the first :meth:`push`, on
    the features' device (and follow the features to another device). The loss that
    owns a bank saves it in checkpoints with :meth:`state` / :meth:`from_state`.

    Attributes:
        feats_a (Tensor): (C, M + 1, D_a); row ``M`` of each class is a dump slot
            that receives the instances not kept (no host synchronisation).
        feats_b (Tensor): (C, M + 1, D_b).
        valid (Tensor): (C, M + 1) bool; the dump slot is never valid.
        ptr (Tensor): (C,) long, next row to overwrite per class.
    """

    #: the tensors of the bank (None before the first push)
    TENSORS = ('feats_a', 'feats_b', 'valid', 'ptr')

    def __init__(self, num_classes: int, size: int):
        if num_classes < 1 or size < 1:
            raise ValueError(f'ClassFeatureBank needs num_classes >= 1 and size >= 1, got '
                             f'{num_classes} and {size}.')
        self.num_classes, self.size = int(num_classes), int(size)
        self.feats_a: Optional[Tensor] = None
        self.feats_b: Optional[Tensor] = None
        self.valid: Optional[Tensor] = None
        self.ptr: Optional[Tensor] = None

    def _init(self, dim_a: int, dim_b: int, ref: Tensor) -> None:
        C, M = self.num_classes, self.size
        self.feats_a = ref.new_zeros(C, M + 1, dim_a)
        self.feats_b = ref.new_zeros(C, M + 1, dim_b)
        self.valid = torch.zeros(C, M + 1, dtype=torch.bool, device=ref.device)
        self.ptr = torch.zeros(C, dtype=torch.long, device=ref.device)

    @torch.no_grad()
    def push(self,
             feats_a: Tensor,
             feats_b: Tensor,
             labels: Tensor,
             keep: Optional[Tensor] = None) -> None:
        """Write instances into their class's ring (oldest overwritten first).

        Instances in one call beyond ``M`` of a class, with ``keep`` False or with a
        label outside ``[0, C)`` (background) are not written.

        Args:
            feats_a (Tensor): (N, D_a), detached here.
            feats_b (Tensor): (N, D_b), the same instances.
            labels (Tensor): (N,) long.
            keep (Tensor, optional): (N,) bool.
        """
        if feats_a.shape[0] != feats_b.shape[0] or feats_a.shape[0] != labels.shape[0]:
            raise ValueError(f'ClassFeatureBank.push: {feats_a.shape[0]}, {feats_b.shape[0]} '
                             f'and {labels.shape[0]} instances; give the same instances.')
        if self.feats_a is None:
            self._init(feats_a.shape[1], feats_b.shape[1], feats_a)
        elif self.feats_a.device != feats_a.device:  # restored from a CPU checkpoint
            self.to(feats_a.device)
        C, M = self.num_classes, self.size
        labels = labels.long().to(self.ptr.device)
        ok = (labels >= 0) & (labels < C)
        if keep is not None:
            ok = ok & keep.to(ok.device)
        cls = labels.clamp(0, C - 1)
        onehot = F.one_hot(cls, C) * ok.long().unsqueeze(1)  # (N, C)
        rank = (onehot.cumsum(0) - 1).gather(1, cls.unsqueeze(1)).squeeze(1)  # within class
        ok = ok & (rank < M)
        slot = torch.where(ok, (self.ptr[cls] + rank) % M, torch.full_like(rank, M))
        index = cls * (M + 1) + slot
        self.feats_a.view(C * (M + 1), -1).index_copy_(0, index, feats_a.detach().to(self.feats_a))
        self.feats_b.view(C * (M + 1), -1).index_copy_(0, index, feats_b.detach().to(self.feats_b))
        self.valid.view(-1).index_fill_(0, index, True)
        self.valid[:, M] = False  # the dump slot
        self.ptr = (self.ptr + (onehot * ok.long().unsqueeze(1)).sum(0)) % M

    def filled(self) -> bool:
        """Whether anything was written (no tensor read)."""
        return self.feats_a is not None

    def to(self, device) -> 'ClassFeatureBank':
        """Move the tensors (if any) to ``device``, in place."""
        for name in self.TENSORS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    def state(self) -> dict:
        """The bank as plain tensors and ints (a checkpoint's ``_extra_state``)."""
        return dict(
            num_classes=self.num_classes,
            size=self.size,
            **{n: getattr(self, n)
               for n in self.TENSORS})

    @classmethod
    def from_state(cls, state: dict) -> 'ClassFeatureBank':
        """The bank :meth:`state` saved."""
        bank = cls(state['num_classes'], state['size'])
        for name in cls.TENSORS:
            setattr(bank, name, state[name])
        return bank


def density_candidates(feats_a: Tensor,
                       feats_b: Tensor,
                       valid: Tensor,
                       sigma: float = 0.1,
                       quantile: float = 0.4) -> Tensor:
    r"""Instances dense in both spaces: the prototype candidates :math:`\Gamma`.

    .. math::
        \rho^a_n = \sum_{m \text{ valid}} \exp\!\big(-((1 - \cos(a_n, a_m)) /
        \sigma)^2\big), \qquad
        \Gamma = \{n : \rho^a_n > \rho^a_{(q)} \wedge \rho^b_n > \rho^b_{(q)}\}

    with :math:`\rho_{(q)}` the density of rank ``floor(quantile * n_c)`` (0-based,
    ascending) among the ``n_c`` valid instances of the class (the authors'
    threshold). A class where no instance passes keeps all its valid instances
    (the authors' code would have no candidate there).

    Args:
        feats_a (Tensor): (C, M, D_a).
        feats_b (Tensor): (C, M, D_b).
        valid (Tensor): (C, M) bool.
        sigma (float): kernel width on the cosine distance.
        quantile (float): in [0, 1).

    Returns:
        Tensor: (C, M) bool, a subset of ``valid``.
    """
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f'quantile must be in [0, 1), got {quantile}.')
    vf = valid.to(feats_a.dtype)
    count = valid.sum(1)  # (C,)
    k = (count.to(feats_a.dtype) * quantile).floor().long().clamp(min=0)
    k = torch.minimum(k, (count - 1).clamp(min=0))
    keep = valid
    for feats in (feats_a, feats_b):
        x = F.normalize(feats, dim=-1)
        dist = 1 - x @ x.transpose(1, 2)  # (C, M, M)
        dens = (torch.exp(-(dist / sigma)**2) * vf.unsqueeze(1)).sum(2)
        ranked = dens.masked_fill(~valid, float('inf')).sort(1).values
        thr = ranked.gather(1, k.unsqueeze(1))  # (C, 1)
        keep = keep & (dens > thr)
    return torch.where(keep.any(1, keepdim=True), keep, valid)


def select_prototypes(feats_a: Tensor,
                      feats_b: Tensor,
                      candidates: Tensor,
                      num_prototypes: int,
                      alpha: float = 10.0,
                      valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    r"""Joint matching pursuit (module docstring) of ``num_prototypes`` atoms per
    class, all classes at once.

    The fitted instances are the ``valid`` ones (default: ``candidates``), the
    atoms are chosen among ``candidates``; both spaces are L2-normalised first. An
    atom may be chosen again (as in the authors' code).

    Args:
        feats_a (Tensor): (C, M, D_a), e.g. the teacher's instance features.
        feats_b (Tensor): (C, M, D_b), the student's, row for row the same instances.
        candidates (Tensor): (C, M) bool.
        num_prototypes (int): ``T`` >= 1.
        alpha (float): weight of the coefficient tie :math:`(w^a - w^b)^2`.
        valid (Tensor, optional): (C, M) bool instances to reconstruct.

    Returns:
        tuple: (C, T) long indices into ``M`` and (C, T) bool, False for a class
        without candidates.
    """
    if num_prototypes < 1:
        raise ValueError(f'num_prototypes must be >= 1, got {num_prototypes}.')
    valid = candidates if valid is None else valid
    vf = valid.to(feats_a.dtype).unsqueeze(-1)
    atoms_a = F.normalize(feats_a, dim=-1)
    atoms_b = F.normalize(feats_b, dim=-1)
    res_a, res_b = atoms_a * vf, atoms_b * vf  # (C, M, D): one residual per instance
    norm_a = atoms_a.pow(2).sum(-1).unsqueeze(-1)  # (C, M, 1): ||a_k||^2
    norm_b = atoms_b.pow(2).sum(-1).unsqueeze(-1)
    indices = []
    for _ in range(num_prototypes):
        ia = atoms_a @ res_a.transpose(1, 2)  # (C, K, N): <a_k, r_n>
        ib = atoms_b @ res_b.transpose(1, 2)
        wa = (alpha * (ia + ib) + ia) / (1 + 2 * alpha)
        wb = (alpha * (ia + ib) + ib) / (1 + 2 * alpha)
        # sum_n ||w a_k - r_n||^2 = sum_n w^2 ||a_k||^2 - 2 w <a_k, r_n> + ||r_n||^2
        err = (wa.pow(2) * norm_a - 2 * wa * ia + wb.pow(2) * norm_b - 2 * wb * ib + alpha *
               (wa - wb).pow(2)).sum(2)
        err = err + (res_a.pow(2).sum((1, 2)) + res_b.pow(2).sum((1, 2))).unsqueeze(1)
        best = err.masked_fill(~candidates, float('inf')).argmin(1)  # (C,)
        indices.append(best)
        pick = best.view(-1, 1, 1)
        a_k = atoms_a.gather(1, pick.expand(-1, 1, atoms_a.shape[2]))  # (C, 1, D_a)
        b_k = atoms_b.gather(1, pick.expand(-1, 1, atoms_b.shape[2]))
        w_ak = wa.gather(1, pick.expand(-1, 1, wa.shape[2])).transpose(1, 2)  # (C, N, 1)
        w_bk = wb.gather(1, pick.expand(-1, 1, wb.shape[2])).transpose(1, 2)
        res_a = res_a - w_ak * a_k
        res_b = res_b - w_bk * b_k
    indices = torch.stack(indices, 1)
    return indices, candidates.gather(1, indices)


def prototype_similarity(feats: Tensor,
                         prototypes: Tensor,
                         proto_valid: Optional[Tensor] = None) -> Tensor:
    r"""Cosine similarity of instances to prototypes, :math:`g_{ik} =
    \cos(f_i, p_k)`; 0 for invalid prototypes.

    Args:
        feats (Tensor): (N, D).
        prototypes (Tensor): (K, D).
        proto_valid (Tensor, optional): (K,) bool.

    Returns:
        Tensor: (N, K).
    """
    sim = F.normalize(feats, dim=-1) @ F.normalize(prototypes, dim=-1).t()
    if proto_valid is not None:
        sim = sim * proto_valid.to(sim.dtype)
    return sim
