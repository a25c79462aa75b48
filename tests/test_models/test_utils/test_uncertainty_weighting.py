"""Uncertainty weighting of per-element errors (PAD): hand values and a loop reference."""
import math

import pytest
import torch

from mmkd_det.models.utils.uncertainty_weighting import (ElementErrors, VarianceBranch,
                                                         reduce_element_errors)


def test_reduce_hand_values():
    # one group (1, 2, 1, 2): errors [[1, 4]], [[9, 16]] (channel-major), mask keeps
    # location 0 only, normaliser 2.
    err = torch.tensor([[[[1., 4.]], [[9., 16.]]]])
    mask = torch.tensor([[[[1., 0.]]]])
    terms = ElementErrors([err], [err], [mask], [torch.tensor(2.)])
    # plain: (1 + 9) / 2
    assert reduce_element_errors(terms).item() == pytest.approx(5.0)
    # location log-variance s = log 2 at location 0 (shared by both channels):
    # (1 / 2 + log 2) + (9 / 2 + log 2) = 5 + 2 log 2, / 2
    s = torch.tensor([[[[math.log(2.0), 7.0]]]])
    assert reduce_element_errors(terms, [s]).item() == pytest.approx(2.5 + math.log(2.0))
    # element log-variances: channel 0 s = 0, channel 1 s = log 3 at location 0:
    # (1 + 0) + (9 / 3 + log 3) = 4 + log 3, / 2
    s = torch.tensor([[[[0.0, 5.0]], [[math.log(3.0), 5.0]]]])
    assert reduce_element_errors(terms, [s]).item() == pytest.approx((4 + math.log(3.0)) / 2)
    # zero log-variance: the plain loss
    assert reduce_element_errors(terms, [torch.zeros(1, 1, 1, 2)]).item() == pytest.approx(5.0)


def test_reduce_against_loop_several_groups():
    torch.manual_seed(0)
    errs = [torch.rand(2, 3, 4, 5), torch.rand(2, 3, 2, 2)]
    masks = [(torch.rand(2, 1, 4, 5) > 0.5).float(), None]
    norms = [torch.tensor(7.0), torch.tensor(3.0)]
    s = [torch.randn(2, 1, 4, 5), torch.randn(2, 3, 2, 2)]
    value = reduce_element_errors(ElementErrors(errs, errs, masks, norms), s)
    expected = 0.0
    for g in range(2):
        total = 0.0
        n, c, h, w = errs[g].shape
        for i in range(n):
            for k in range(c):
                for y in range(h):
                    for x in range(w):
                        m = 1.0 if masks[g] is None else masks[g][i, 0, y, x].item()
                        sv = s[g][i, min(k, s[g].shape[1] - 1), y, x].item()
                        total += m * (errs[g][i, k, y, x].item() * math.exp(-sv) + sv)
        expected += total / norms[g].item()
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_optimal_variance_is_the_error():
    # d/ds (e exp(-s) + s) = 0 at s = log e: the learned variance goes to the error
    err = torch.tensor([[[[4.0]]]])
    s = torch.tensor([[[[0.0]]]], requires_grad=True)
    opt = torch.optim.SGD([s], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        reduce_element_errors(ElementErrors([err], [err], [None], [torch.tensor(1.)]),
                              [s]).backward()
        opt.step()
    assert s.item() == pytest.approx(math.log(4.0), abs=1e-3)


def test_variance_branch_shapes_init_bound_and_errors():
    feats = [torch.randn(2, 3, 4, 4), torch.randn(5, 3, 7, 7), torch.randn(6, 3)]
    out = VarianceBranch(3)(feats)
    assert [tuple(o.shape) for o in out] == [(2, 1, 4, 4), (5, 1, 7, 7), (6, 1)]
    assert all(bool((o == 0).all()) for o in out)  # zero init: sigma = 1
    out = VarianceBranch(3, granularity='element', init='default')(feats)
    assert [tuple(o.shape) for o in out] == [(2, 3, 4, 4), (5, 3, 7, 7), (6, 3)]
    branch = VarianceBranch(3, bound=0.5, init='default')
    with torch.no_grad():
        branch.conv.bias.fill_(100.0)
    assert torch.allclose(branch(feats)[0], torch.full((2, 1, 4, 4), 0.5))
    # detached input: the features get no gradient through the branch
    f = torch.randn(1, 3, 2, 2, requires_grad=True)
    VarianceBranch(3, init='default', detach_input=True)([f])[0].sum().backward()
    assert f.grad is None
    with pytest.raises(ValueError, match='granularity'):
        VarianceBranch(3, granularity='image')
    with pytest.raises(ValueError, match='bound'):
        VarianceBranch(3, bound=0.0)
    with pytest.raises(ValueError, match='init'):
        VarianceBranch(3, init='ones')
    with pytest.raises(ValueError, match='N, C'):
        VarianceBranch(3)([torch.zeros(1, 3, 2)])
    with pytest.raises(ValueError, match='groups'):
        reduce_element_errors(ElementErrors([feats[0]], [feats[0]], [None], [1.0]), [])
