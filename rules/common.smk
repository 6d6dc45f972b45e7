# Config validation, helpers and wildcard constraints shared by the stage files.
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml", set_default=True)

# A dataset mapped to null (e.g. `creatures7: null` in a --configfile) is switched off.
config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
if not config["datasets"]:
    raise ValueError("config: every dataset is switched off (mapped to null); configure at least one under `datasets:`")
DATASETS = list(config["datasets"])
for _name, _settings in config["datasets"].items():
    _model_size = _settings["diffusion"]["flags"].get("image_size", 64)
    _settings["image_size"] = _settings["image_size"] or _model_size
    if _settings["image_size"] != _model_size:
        raise ValueError(
            f"config: dataset {_name!r} has image_size {_settings['image_size']} but its diffusion "
            f"model flags have image_size {_model_size}; set both to the model's resolution."
        )
METHODS = config["methods"]
SEEDS = config["seeds"]
MODEL_METHODS = ["ddpm", "unet_untrained"]  # methods whose features come from a UNet
CONTROL_METHODS = ["pixels", "patch"]  # hand-made features


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    split="train|test|unlabeled",
    model="|".join(MODEL_METHODS),
    control="|".join(CONTROL_METHODS),
    method="|".join(MODEL_METHODS + CONTROL_METHODS),
    seed=r"\d+",


def ds(wildcards):
    """The validated settings of the wildcard's dataset."""
    return config["datasets"][wildcards.dataset]


def per_seed(path):
    """`path` (its other wildcards escaped as {{dataset}}) for every configured seed."""
    return expand(path, seed=SEEDS)


def trains_diffusion(dataset):
    return config["datasets"][dataset]["diffusion"]["checkpoint"] is None


def dataset_source(wildcards):
    """The dataset folder: the user's path, or the generated embedded dataset."""
    path = ds(wildcards)["path"]
    return path if path is not None else f"resources/{wildcards.dataset}/source"



def feature_stores(dataset, method, split):
    """Store paths of one method's features, timestep-major and block-minor (paper's order)."""
    if method in CONTROL_METHODS:
        return [f"results/{dataset}/features/{method}/{split}/features_{method}.zarr"]
    settings = config["datasets"][dataset]["features"]
    return [
        f"results/{dataset}/features/{method}/{split}/features_b{b}_t{t}.zarr"
        for t in sorted(set(settings["timesteps"]))
        for b in sorted(set(settings["blocks"]))
    ]


def extraction_inputs(dataset):
    """Input function of one dataset's extraction rule: its prepared split and checkpoint."""

    def inputs(wildcards):
        paths = {"data": f"results/{dataset}/data/{wildcards.split}.zarr"}
        if wildcards.model == "ddpm":
            given = config["datasets"][dataset]["diffusion"]["checkpoint"]
            paths["checkpoint"] = given or f"results/{dataset}/diffusion/model.pt"
        return paths

    return inputs
