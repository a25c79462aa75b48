"""GloRe unit against the equations evaluated step by step with explicit matrices."""
import pytest
import torch

from mmkd_det.models.utils import GloReUnit


def test_graph_against_explicit_matrices():
    torch.manual_seed(0)
    unit = GloReUnit(6, state_channels=4, num_nodes=3).double()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    y = unit.graph(x)
    for b in range(2):
        xb = x[b].reshape(6, 20)
        states = unit.reduce.weight.view(4, 6) @ xb + unit.reduce.bias[:, None]  # X (C1, HW)
        proj = unit.project.weight.view(3, 6) @ xb + unit.project.bias[:, None]  # B (N, HW)
        v = states @ proj.t() / 20                                                # V = X B^T / HW
        a, bias = unit.node_adj.weight, unit.node_adj.bias                        # A, b (N)
        v = torch.relu(v.t() - a @ v.t() - bias[:, None])                         # (I - A) V - b
        z = v @ unit.state_update.weight.t()                                      # ... W
        ref = z.t() @ proj                                                        # Y = Z B
        torch.testing.assert_close(y[b].reshape(4, 20), ref)


def test_unnormalized_projection_scales_with_the_map():
    torch.manual_seed(0)
    unit = GloReUnit(6, 4, 3, normalize=False).double()
    x = torch.randn(1, 6, 5, 4, dtype=torch.float64)
    normed = GloReUnit(6, 4, 3).double()
    normed.load_state_dict(unit.state_dict())
    # V differs by the factor HW = 20 before the ReLU; with zero node weights and bias the
    # ReLU is positively homogeneous, so Y scales by 20 too
    for m in (unit, normed):
        torch.nn.init.zeros_(m.node_adj.weight)
        torch.nn.init.zeros_(m.node_adj.bias)
    torch.testing.assert_close(unit.graph(x), 20 * normed.graph(x))


def test_residual_identity_at_init_and_options():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 4)
    unit = GloReUnit(6, state_channels=4, num_nodes=3)
    torch.testing.assert_close(unit(x), x)  # zero-initialised output BN
    bare = GloReUnit(6, 4, 3, residual=False, zero_init_bn=False)
    out = bare(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    with pytest.raises(ValueError, match='>= 1'):
        GloReUnit(6, 0, 3)
