"""The pixel classifier of the paper (its Sec. 3.2, settings from DatasetGAN): M MLPs run as one
batched model, `BatchedMLPEnsemble`, whose state_dict holds every tensor with the member index
first.

Here is the model and what is done with a trained one: building it from a state_dict, stacking
ensembles into one and splitting them apart, loading a saved one, and every member's softmax at
pixels, from their feature vectors (`predict_probabilities`) or from the first layer applied to
the native maps at their own resolutions (`first_layer_projections`,
`probabilities_from_first_layer`). Training is `ddpmseg.ensemble`'s; the learned mixing of the
feature cells in front of the MLP is `ddpmseg.aggregation`'s.
"""

import torch

from ddpmseg.precision import matmul_dtype, resolve


def hidden_sizes(num_classes: int) -> tuple:
    """The paper's architecture switch: (128, 32) below 30 classes, else (256, 128)."""
    return (128, 32) if num_classes < 30 else (256, 128)


BN_EPS = 1e-5  # BatchNorm1d's defaults
BN_MOMENTUM = 0.1


def normalise_members(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                      training: bool) -> torch.Tensor:
    """BatchNorm1d without its affine part over the batch dimension of x (M, B, H), per member and
    channel: with the batch's statistics while training (running_mean and running_var (M, H)
    updated in place, the variance unbiased), with the running ones otherwise."""
    if not training:
        return (x - running_mean.unsqueeze(1)) * torch.rsqrt(running_var.unsqueeze(1) + BN_EPS)
    # centring first and averaging squares is both exact and ~2x faster on CPU than x.var
    mean = x.mean(dim=1, keepdim=True)
    x = x - mean
    var = (x * x).mean(dim=1, keepdim=True)
    with torch.no_grad():
        n = x.shape[1]
        running_mean.lerp_(mean.squeeze(1), BN_MOMENTUM)
        running_var.lerp_(var.squeeze(1) * n / max(n - 1, 1), BN_MOMENTUM)
    return x * torch.rsqrt(var + BN_EPS)


class BatchedMLPEnsemble(torch.nn.Module):
    """M independent MLPs Linear-ReLU-BN-Linear-ReLU-BN-Linear evaluated as one batch.

    forward(x): x (M, B, D) float32 -> logits (M, B, C). Linear weights ~ N(0, 0.02) and zero
    biases (DatasetGAN's init), BatchNorm weight 1 and bias 0, BN momentum 0.1, eps 1e-5.
    The state_dict holds tensors with the member index first, e.g. `weight0` (M, D, H1).
    `matmul_dtype` (not saved: `precision.resolve` of `ensemble.precision`): the dtype of the
    three matrix products (float32, or bfloat16 with float32 results); the rest is float32.
    """

    def __init__(self, n_members: int, in_features: int, num_classes: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = (in_features, *hidden_sizes(num_classes), num_classes)
        self.n_layers = len(widths) - 1
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
            weight = torch.randn(n_members, d_in, d_out, generator=generator) * 0.02
            self.register_parameter(f"weight{i}", torch.nn.Parameter(weight))
            self.register_parameter(f"bias{i}", torch.nn.Parameter(torch.zeros(n_members, d_out)))
            if i < self.n_layers - 1:
                self.register_parameter(f"bn_weight{i}", torch.nn.Parameter(torch.ones(n_members, d_out)))
                self.register_parameter(f"bn_bias{i}", torch.nn.Parameter(torch.zeros(n_members, d_out)))
                self.register_buffer(f"bn_mean{i}", torch.zeros(n_members, d_out))
                self.register_buffer(f"bn_var{i}", torch.ones(n_members, d_out))
        self.n_members, self.in_features, self.num_classes = n_members, in_features, num_classes
        self.matmul_dtype = torch.float32

    def forward(self, x: torch.Tensor, first_layer_done: bool = False) -> torch.Tensor:
        """x: (M, B, D) -> logits (M, B, C); with `first_layer_done`, x is the first Linear's
        output (M, B, H1) and the forward continues from its ReLU."""
        for i in range(self.n_layers):
            if i > 0 or not first_layer_done:
                bias, weight = getattr(self, f"bias{i}").unsqueeze(1), getattr(self, f"weight{i}")
                if self.matmul_dtype == torch.float32:
                    x = torch.baddbmm(bias, x, weight)
                else:
                    x = _matmul(x, weight, self.matmul_dtype) + bias
            if i == self.n_layers - 1:
                return x
            x = torch.relu(x)
            x = self._batch_norm(x, i)

    def _batch_norm(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """BatchNorm1d over the batch dimension of x (M, B, H), per member and channel."""
        x = normalise_members(x, getattr(self, f"bn_mean{i}"), getattr(self, f"bn_var{i}"), self.training)
        return torch.addcmul(getattr(self, f"bn_bias{i}").unsqueeze(1), x, getattr(self, f"bn_weight{i}").unsqueeze(1))

    def member_slices(self) -> dict:
        """{name: tensor} of every parameter and buffer (all have the member index first)."""
        return dict(self.state_dict(keep_vars=True))


def ensemble_from_state_dict(state: dict, matmul_dtype=torch.float32) -> BatchedMLPEnsemble:
    """An ensemble holding the tensors of `state` (every tensor has the member index first; a
    learned aggregation's ensemble has its mixing weights `cell_weights` (M, K) too)."""
    n_members, in_features, _ = state["weight0"].shape
    num_classes = state[f"weight{sum(k.startswith('weight') for k in state) - 1}"].shape[2]
    model = BatchedMLPEnsemble(n_members, in_features, num_classes, seed=0)
    if "cell_weights" in state:
        model.register_buffer("cell_weights", torch.empty_like(state["cell_weights"]))
    model.load_state_dict(state)
    model.matmul_dtype = matmul_dtype
    return model


def stack_ensembles(models) -> BatchedMLPEnsemble:
    """One ensemble whose members are those of `models`, in order (all alike in shape)."""
    states = [m.state_dict() for m in models]
    return ensemble_from_state_dict({name: torch.cat([s[name] for s in states]) for name in states[0]})


def split_ensemble(model: BatchedMLPEnsemble, n_parts: int) -> list:
    """The inverse of `stack_ensembles`: `n_parts` ensembles of consecutive, equal member groups."""
    state = model.state_dict()
    return [ensemble_from_state_dict({name: chunk.clone() for name, chunk in zip(state, chunks)}, model.matmul_dtype)
            for chunks in zip(*(value.chunk(n_parts) for value in state.values()))]


def load_ensemble(path, precision: str = "float32", device: str = "cpu") -> BatchedMLPEnsemble:
    """An ensemble from a state_dict written by `torch.save(model.state_dict(), path)`, its matrix
    products in `precision` (a `ddpmseg.precision` setting) as resolved for `device`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return ensemble_from_state_dict(state, matmul_dtype(resolve(precision, device))).eval()


def _first_weight(model: BatchedMLPEnsemble) -> torch.Tensor:
    """Every member's first-layer weights side by side: (D, M * H1), member-major."""
    return model.weight0.permute(1, 0, 2).reshape(model.in_features, -1)


def _matmul(a: torch.Tensor, b: torch.Tensor, dtype) -> torch.Tensor:
    """a @ b with its products in `dtype` and a float32 result."""
    return a @ b if dtype == torch.float32 else (a.to(dtype) @ b.to(dtype)).float()


@torch.no_grad()
def first_layer_projections(model: BatchedMLPEnsemble, maps) -> list:
    """Every member's first Linear (no bias) applied to one image's maps at their own resolutions.

    maps: [(H_k, W_k, C_k)] in the order of the feature columns (`stores.native_maps`).
    Returns one (H, W, M * H1) float32 tensor per distinct (H, W), in order of first appearance:
    the sum over the maps of that resolution of map_k @ weight0[rows of map k]. Bilinear
    upsampling is linear with weights summing to one, so it commutes with the first layer:
    sampling these at a pixel (`stores.sample_pixel_features`), summing and adding bias0 gives
    the first layer's output on the upsampled features, at h*w instead of S*S positions a map.
    """
    weight = _first_weight(model)
    sums, column = {}, 0
    for fmap in maps:
        height, width, channels = fmap.shape
        projection = _matmul(fmap.reshape(height * width, channels).float(), weight[column : column + channels],
                             model.matmul_dtype)
        if (height, width) in sums:
            sums[height, width] += projection
        else:
            sums[height, width] = projection
        column += channels
    return [projection.reshape(height, width, -1) for (height, width), projection in sums.items()]


@torch.no_grad()
def probabilities_from_first_layer(model: BatchedMLPEnsemble, first_layer: torch.Tensor) -> torch.Tensor:
    """Softmax of every member from its first Linear's output without bias: first_layer
    (P, M * H1) float32 -> (M, P, C) float32."""
    x = (first_layer + model.bias0.reshape(-1)).reshape(len(first_layer), model.n_members, -1).transpose(0, 1)
    return torch.softmax(model(x, first_layer_done=True), dim=-1)


@torch.no_grad()
def predict_probabilities(model: BatchedMLPEnsemble, pixel_features: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Softmax of every member: pixel_features (P, D) float32 -> (M, P, C) float32.

    All members see the same pixels, so their first layers run as one (P, D) x (D, M * H1)
    matrix product instead of M products of the same rows.
    """
    first_weight = _first_weight(model)
    return torch.cat([probabilities_from_first_layer(model, _matmul(pixel_features[start : start + chunk], first_weight,
                                                                    model.matmul_dtype))
                      for start in range(0, len(pixel_features), chunk)], dim=1)
