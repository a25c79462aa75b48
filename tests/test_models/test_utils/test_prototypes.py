"""Prototype helpers (ODGK's PGM): the class-wise ring bank by hand, the density filter
and the joint matching pursuit against slow per-class loops written from the
definitions (explicit residual reconstructions, no closed-form error)."""
import pytest
import torch
import torch.nn.functional as F

from mmkd_det.models.utils.prototypes import (ClassFeatureBank, density_candidates,
                                              prototype_similarity, select_prototypes)


def test_bank_ring_by_hand():
    bank = ClassFeatureBank(num_classes=2, size=2)
    assert not bank.filled()
    a = torch.tensor([[1.], [2.], [3.], [4.], [9.]])
    b = 10 * a
    # class 0 gets 1, 2 (the third class-0 instance of the call, 4, exceeds M = 2);
    # 9 has the background label 2 and is not written
    bank.push(a, b, torch.tensor([0, 0, 1, 0, 2]))
    assert bank.feats_a[0, :2, 0].tolist() == [1., 2.]
    assert bank.feats_a[1, 0, 0].item() == 3.
    assert bank.feats_b[1, 0, 0].item() == 30.
    assert bank.valid[:, :2].tolist() == [[True, True], [True, False]]
    assert bank.ptr.tolist() == [0, 1]
    # next call: class 0 overwrites its oldest row (slot 0), keep=False skips class 1
    bank.push(torch.tensor([[5.], [6.]]), torch.tensor([[50.], [60.]]), torch.tensor([0, 1]),
              keep=torch.tensor([True, False]))
    assert bank.feats_a[0, :2, 0].tolist() == [5., 2.]
    assert bank.valid[1, :2].tolist() == [True, False]
    assert bank.ptr.tolist() == [1, 1]
    assert not bank.valid[:, 2].any()  # the dump slot
    with pytest.raises(ValueError, match='same instances'):
        bank.push(a, b[:2], torch.tensor([0, 0, 1, 0, 2]))
    with pytest.raises(ValueError, match='size >= 1'):
        ClassFeatureBank(2, 0)


def _density_ref(fa, fb, valid, sigma, q):
    out = torch.zeros_like(valid)
    for c in range(valid.shape[0]):
        idx = [n for n in range(valid.shape[1]) if valid[c, n]]
        if not idx:
            continue
        keep = set(idx)
        for f in (fa[c], fb[c]):
            dens = {}
            for n in idx:
                total = 0.0
                for m in idx:
                    cos = torch.dot(f[n], f[m]) / (f[n].norm() * f[m].norm())
                    total += torch.exp(-((1 - cos) / sigma)**2).item()
                dens[n] = total
            thr = sorted(dens.values())[int(len(idx) * q)]
            keep &= {n for n in idx if dens[n] > thr}
        for n in (keep or idx):
            out[c, n] = True
    return out


def test_density_candidates_against_loop():
    torch.manual_seed(0)
    fa, fb = torch.randn(3, 7, 5), torch.randn(3, 7, 4)
    valid = torch.rand(3, 7) > 0.3
    valid[2] = False
    for sigma, q in ((0.5, 0.4), (2.0, 0.0), (1.0, 0.7)):
        got = density_candidates(fa, fb, valid, sigma, q)
        assert torch.equal(got, _density_ref(fa, fb, valid, sigma, q))
    with pytest.raises(ValueError, match='quantile'):
        density_candidates(fa, fb, valid, 0.1, 1.0)


def test_density_by_hand():
    """Three copies of e1 and one e2 (both spaces): densities 3, 3, 3, 1 (exp(-100) ~ 0);
    4 instances, q = 0.25 -> rank 1 -> threshold 3: no density is above it, so the
    class keeps all its instances; with q = 0 the threshold is 1 and the copies pass."""
    f = torch.tensor([[[1., 0.], [1., 0.], [1., 0.], [0., 1.]]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert density_candidates(f, f, valid, 0.1, 0.25).tolist() == [[True] * 4]
    assert density_candidates(f, f, valid, 0.1, 0.0).tolist() == [[True, True, True, False]]


def _pursuit_ref(fa, fb, cand, valid, T, alpha):
    """Per class: explicit residual matrices, every candidate's fit built and measured."""
    out = []
    for c in range(fa.shape[0]):
        A = F.normalize(fa[c], dim=-1)
        B = F.normalize(fb[c], dim=-1)
        ra = [A[n].clone() if valid[c, n] else torch.zeros_like(A[n]) for n in range(len(A))]
        rb = [B[n].clone() if valid[c, n] else torch.zeros_like(B[n]) for n in range(len(B))]
        picks = []
        for _ in range(T):
            best, best_err, best_w = None, float('inf'), None
            for k in range(len(A)):
                if not cand[c, k]:
                    continue
                err, ws = 0.0, []
                for n in range(len(A)):
                    ia, ib = torch.dot(A[k], ra[n]), torch.dot(B[k], rb[n])
                    wa = (alpha * (ia + ib) + ia) / (1 + 2 * alpha)
                    wb = (alpha * (ia + ib) + ib) / (1 + 2 * alpha)
                    err += ((wa * A[k] - ra[n])**2).sum() + ((wb * B[k] - rb[n])**2).sum() \
                        + alpha * (wa - wb)**2
                    ws.append((wa, wb))
                if err < best_err - 1e-9:
                    best, best_err, best_w = k, err, ws
            if best is None:
                picks.append(0)
                continue
            picks.append(best)
            for n, (wa, wb) in enumerate(best_w):
                ra[n] = ra[n] - wa * A[best]
                rb[n] = rb[n] - wb * B[best]
        out.append(picks)
    return torch.tensor(out)


@pytest.mark.parametrize('alpha', [0.0, 10.0])
def test_select_prototypes_against_loop(alpha):
    torch.manual_seed(1)
    fa, fb = torch.randn(3, 6, 5), torch.randn(3, 6, 3)
    valid = torch.rand(3, 6) > 0.2
    valid[1, :] = False
    cand = valid & (torch.rand(3, 6) > 0.3)
    cand[0, 0] = valid[0, 0] = True
    idx, ok = select_prototypes(fa, fb, cand, 3, alpha, valid=valid)
    ref = _pursuit_ref(fa, fb, cand, valid, 3, alpha)
    assert torch.equal(idx[[0, 2]], ref[[0, 2]])
    assert ok[1].tolist() == [False] * 3 and ok[[0, 2]].all()


def test_select_prototypes_by_hand():
    """alpha = 0, instances e1, e1, e2 in both spaces: atom e1 leaves the e2 instance
    (error 2 = 1 per space), atom e2 leaves two e1 (error 4): pick 0, then e2 (index 2)."""
    f = torch.tensor([[[1., 0.], [1., 0.], [0., 1.]]])
    cand = torch.ones(1, 3, dtype=torch.bool)
    idx, ok = select_prototypes(f, 3 * f, cand, 2, alpha=0.0)
    assert idx.tolist() == [[0, 2]] and ok.all()
    with pytest.raises(ValueError, match='num_prototypes'):
        select_prototypes(f, f, cand, 0)


def test_prototype_similarity():
    feats = torch.tensor([[3., 4.], [1., 0.]])
    protos = torch.tensor([[1., 0.], [0., 2.]])
    sim = prototype_similarity(feats, protos, torch.tensor([True, False]))
    assert torch.allclose(sim, torch.tensor([[0.6, 0.], [1., 0.]]))
