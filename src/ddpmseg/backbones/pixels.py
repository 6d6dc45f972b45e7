"""The 'Pixels' control: each pixel's RGB in [-1, 1] and its x, y in [-1, 1] (5 features)."""

from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_parts,
    model_settings, noise_shape, sweep_layers,
)

NAME = "Pixels (RGB+xy)"
TAKES_TIMESTEPS = False
NORMALISATION = "[-1, 1]"
BUILT_FROM = "no model: the image itself"
PRETRAINED_BY_WORKFLOW = False
RUNS_A_MODEL = False
EXPORTABLE = True


def one_layer_settings(layer: str) -> dict:
    """The settings schema of a source without a model whose one layer is `layer`."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "layers": {"description": f"Its one layer, '{layer}' (null = it).", "anyOf": [
                {"type": "null"}, {"type": "array", "items": {"const": layer}, "minItems": 1, "maxItems": 1}],
                "default": None},
        },
    }


SETTINGS = one_layer_settings("pixels")


def layer_table(settings: dict, image_size: int) -> dict:
    """{'pixels': (5, image_size)}."""
    return {"pixels": (5, image_size)}


def default_layers(settings: dict, image_size: int) -> list:
    return ["pixels"]


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """No model: an empty module."""
    return model_parts()


def coordinates(x):
    """(B, 2, S, S): x and y of every pixel on [-1, 1] (linspace), for x (B, 3, S, S)."""
    import torch

    n, _, size, _ = x.shape
    coords = torch.linspace(-1.0, 1.0, size, device=x.device)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx, yy]).expand(n, 2, size, size)


def activations(model, x, layers, timesteps=None, noise=None) -> dict:
    """{('pixels', None): (B, 5, S, S)}: x (B, 3, S, S) in [-1, 1], then x and y."""
    import torch

    return {("pixels", None): torch.cat([x, coordinates(x)], dim=1)}
