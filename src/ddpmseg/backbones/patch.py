"""The 'Patch' control: the 5x5 RGB neighbourhood of each pixel (reflect-padded, in [-1, 1])
and its x, y in [-1, 1] (77 features)."""

from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_settings,
    noise_shape, sweep_layers,
)
from ddpmseg.backbones.pixels import (  # noqa: F401  (a control like 'pixels': no model)
    BUILT_FROM, NORMALISATION, PRETRAINED_BY_WORKFLOW, RUNS_A_MODEL, TAKES_TIMESTEPS, build, coordinates,
    one_layer_settings,
)

NAME = "Patch (5x5 RGB+xy)"
EXPORTABLE = True
SETTINGS = one_layer_settings("patch")


def layer_table(settings: dict, image_size: int) -> dict:
    """{'patch': (77, image_size)}."""
    return {"patch": (77, image_size)}


def default_layers(settings: dict, image_size: int) -> list:
    return ["patch"]


def activations(model, x, layers, timesteps=None, noise=None) -> dict:
    """{('patch', None): (B, 77, S, S)}: the 75 values of each pixel's 5x5 RGB neighbourhood
    (channel-major, as F.unfold orders them), then x and y."""
    import torch
    import torch.nn.functional as F

    n, _, size, _ = x.shape
    colour = F.unfold(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel_size=5).reshape(n, 75, size, size)
    return {("patch", None): torch.cat([colour, coordinates(x)], dim=1)}
