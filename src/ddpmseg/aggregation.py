"""Learned aggregation of the feature cells (`ensemble.aggregation: learned`), after Diffusion
Hyperfeatures (Luo et al., NeurIPS 2023): instead of concatenating the (layer, timestep) cells
into the MLP's input, every member projects each cell to a common width with its own 1x1
projection (a Linear over the cell's channels), normalises it, and feeds the MLP the softmax-
weighted sum of the cells. The mixing weights are trained with the member, on the same pixels and
budget, and say which cells it uses.

Each projected cell is batch-normalised (no affine part) before mixing, so every cell enters
with unit variance per channel and the softmax weights alone set how much it counts. In eval
mode the whole map from the concatenated features to the MLP's first hidden layer is affine, so
`fold` turns a trained `CellMixingEnsemble` into a plain `BatchedMLPEnsemble` over the
concatenated features: prediction, bundles and every tool that reads an ensemble work unchanged,
and the mixing weights travel with it as its `cell_weights` buffer (M, K).
"""

import torch

from ddpmseg.mlp import BN_EPS, BatchedMLPEnsemble, ensemble_from_state_dict, normalise_members, stack_ensembles

PROJECTION_SEED_OFFSET = 2**31  # projections draw from their own generator, not the MLP's stream


class CellMixingEnsemble(torch.nn.Module):
    """M members, each: per-cell projection, BatchNorm, softmax mixing, then the paper's MLP.

    cell_channels: C_k of the K cells, in the order of the feature columns (D = sum C_k).
    forward(x): x (M, B, D) float32 -> logits (M, B, num_classes). Parameters (member index
    first): `projection{k}` (M, C_k, width) ~ N(0, 1 / C_k), `mixing_logits` (M, K) zeros (uniform
    weights at the start); buffers `mix_mean`, `mix_var` (M, K, width), the running statistics
    of the projected cells (momentum 0.1, as the MLP's BatchNorm); `mlp`: a BatchedMLPEnsemble
    of in_features `width`. Seeds' members are initialised seed by seed, as `stack_ensembles`.
    """

    def __init__(self, seeds: list, n_members: int, cell_channels: list, width: int, num_classes: int):
        super().__init__()
        self.cell_channels, self.width = list(cell_channels), width
        self.mlp = stack_ensembles([BatchedMLPEnsemble(n_members, width, num_classes, seed) for seed in seeds])
        self.n_members = self.mlp.n_members
        generators = [torch.Generator().manual_seed(PROJECTION_SEED_OFFSET + seed) for seed in seeds]
        for k, channels in enumerate(self.cell_channels):
            weight = torch.cat([torch.randn(n_members, channels, width, generator=g) for g in generators])
            self.register_parameter(f"projection{k}", torch.nn.Parameter(weight / channels**0.5))
        n_cells = len(self.cell_channels)
        self.mixing_logits = torch.nn.Parameter(torch.zeros(self.n_members, n_cells))
        self.register_buffer("mix_mean", torch.zeros(self.n_members, n_cells, width))
        self.register_buffer("mix_var", torch.ones(self.n_members, n_cells, width))

    @property
    def matmul_dtype(self):
        return self.mlp.matmul_dtype

    @matmul_dtype.setter
    def matmul_dtype(self, dtype):
        self.mlp.matmul_dtype = dtype

    def cell_weights(self) -> torch.Tensor:
        """The softmax mixing weights (M, K), summing to 1 over the cells."""
        return torch.softmax(self.mixing_logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.cell_weights()
        mixed, column = 0, 0
        for k, channels in enumerate(self.cell_channels):
            y = torch.bmm(x[..., column : column + channels], getattr(self, f"projection{k}"))  # (M, B, W)
            column += channels
            y = normalise_members(y, self.mix_mean[:, k], self.mix_var[:, k], self.training)
            mixed = mixed + weights[:, k, None, None] * y
        return self.mlp(mixed)

    def member_slices(self) -> dict:
        """{name: tensor} of every parameter and buffer (all have the member index first)."""
        return dict(self.state_dict(keep_vars=True))


@torch.no_grad()
def fold(model: CellMixingEnsemble) -> BatchedMLPEnsemble:
    """The plain ensemble over the concatenated features (in_features D) that computes what
    `model` computes in eval mode: cell k's rows of its first Linear are
    projection_k * (w_k / sigma_k) @ weight0, and bias0 gains sum_k (-mu_k * w_k / sigma_k) @ weight0
    (w: the mixing weights, mu, sigma: the running mean and standard deviation of the projected
    cell). Carries the mixing weights as the buffer `cell_weights` (M, K). On the CPU."""
    model = model.cpu()
    state = {name: value.detach().clone() for name, value in model.mlp.state_dict().items()}
    weight0, bias0 = state["weight0"], state["bias0"]  # (M, W, H1), (M, H1)
    scale = model.cell_weights()[:, :, None] * torch.rsqrt(model.mix_var + BN_EPS)  # (M, K, W)
    rows = [torch.bmm(getattr(model, f"projection{k}") * scale[:, k, None, :], weight0)
            for k in range(len(model.cell_channels))]
    state["weight0"] = torch.cat(rows, dim=1)
    state["bias0"] = bias0 + torch.bmm((-model.mix_mean * scale).sum(dim=1, keepdim=True), weight0).squeeze(1)
    state["cell_weights"] = model.cell_weights().detach().clone()
    return ensemble_from_state_dict(state, model.matmul_dtype).eval()
