"""The batched MLP ensemble against the paper's nn.Sequential (`ddpmseg.mlp`)."""
import pytest
import torch

from ddpmseg.mlp import BatchedMLPEnsemble, hidden_sizes


def reference_mlp(model: BatchedMLPEnsemble, m: int) -> torch.nn.Sequential:
    """Member m as the paper's nn.Sequential, with the same weights."""
    h1, h2 = hidden_sizes(model.num_classes)
    net = torch.nn.Sequential(
        torch.nn.Linear(model.in_features, h1), torch.nn.ReLU(), torch.nn.BatchNorm1d(h1),
        torch.nn.Linear(h1, h2), torch.nn.ReLU(), torch.nn.BatchNorm1d(h2), torch.nn.Linear(h2, model.num_classes),
    )
    with torch.no_grad():
        for i, layer in enumerate([net[0], net[3], net[6]]):
            layer.weight.copy_(getattr(model, f"weight{i}")[m].T)
            layer.bias.copy_(getattr(model, f"bias{i}")[m])
        for i, bn in enumerate([net[2], net[5]]):
            bn.weight.copy_(getattr(model, f"bn_weight{i}")[m])
            bn.bias.copy_(getattr(model, f"bn_bias{i}")[m])
    return net


def test_batched_members_equal_the_papers_mlp():
    model = BatchedMLPEnsemble(3, 20, 7, seed=0)
    assert hidden_sizes(7) == (128, 32) and hidden_sizes(30) == (256, 128)
    assert model.weight0.shape == (3, 20, 128) and float(model.weight0.std()) == pytest.approx(0.02, rel=0.1)
    x = torch.randn(3, 64, 20)
    model.train()
    out = model(x)
    for m in range(3):
        net = reference_mlp(model, m).train()
        torch.testing.assert_close(out[m], net(x[m]), rtol=1e-4, atol=1e-5)
        # running statistics follow BatchNorm1d (momentum 0.1, unbiased running variance)
        torch.testing.assert_close(model.bn_mean0[m], net[2].running_mean, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(model.bn_var0[m], net[2].running_var, rtol=1e-4, atol=1e-6)
    model.eval()
    for m in range(3):
        net = reference_mlp(model, m).eval()
        net[2].running_mean.copy_(model.bn_mean0[m]); net[2].running_var.copy_(model.bn_var0[m])
        net[5].running_mean.copy_(model.bn_mean1[m]); net[5].running_var.copy_(model.bn_var1[m])
        torch.testing.assert_close(model(x)[m], net(x[m]), rtol=1e-4, atol=1e-5)
