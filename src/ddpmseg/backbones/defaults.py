"""The usual answers to the source contract (`contract.FeatureSource`): a source whose model
is not the dataset's diffusion model takes these and defines only what differs."""

from ddpmseg.sweep import kmeans_blocks

DIFFUSION_STAGE = False
HAS_MODEL_SEEDS = False
FIGURE_AXES = "layer"


class SweepProblem(ValueError):
    """Why a source's probe sweep cannot be planned before a job runs (one line)."""


def complete_settings(settings: dict, dataset_settings: dict) -> dict:
    """`settings` with null timesteps taken from the dataset's `features.timesteps` (for a source
    whose schema has timesteps)."""
    if "timesteps" in settings and settings["timesteps"] is None:
        settings["timesteps"] = dataset_settings["features"]["timesteps"]
    return settings


def model_origin(settings: dict, dataset_settings: dict) -> dict:
    """The method's own checkpoint (or none) and one model seed (`train.seed`, else 0)."""
    return {"checkpoint": settings.get("checkpoint"),
            "model_seeds": [settings["train"]["seed"]] if "train" in settings else [0],
            "stage_trained": False, "table_known": True}


def sweep_layers(settings: dict, table: dict, probes: dict) -> tuple:
    """Every layer of the table, and Figure 4's at the paper's relative depths."""
    layers = list(table)
    return layers, [layers[i] for i in kmeans_blocks(len(layers))]


def identity_settings(settings: dict) -> dict:
    """Every setting: all of them tell the model and its features."""
    return dict(settings)


def model_settings(model) -> dict:
    """Nothing beyond the configured settings."""
    return {}


def noise_shape(model, image_size: int) -> tuple:
    """(3, S, S): one noise draw is image-shaped (a source that noises the image itself)."""
    return 3, image_size, image_size


def model_parts(**parts):
    """One torch.nn.Module in eval mode holding a source's parts as attributes: the modules among
    them registered (so that `.to`, `state_dict` and an ONNX export see their weights), the rest
    (a noise schedule, flags, a tensor) plain; with no parts, an empty module (no model)."""
    import torch

    model = torch.nn.Module()
    for name, part in parts.items():
        setattr(model, name, part)
    return model.eval()
