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


def model_settings(model) -> dict:
    """Nothing beyond the configured settings."""
    return {}
