# Config validation, helpers and wildcard constraints shared by the stage files.
import urllib.parse
from pathlib import PurePosixPath

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml", set_default=True)

# A dataset mapped to null (e.g. `creatures7: null` in a --configfile) is switched off.
config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
if not config["datasets"]:
    raise ValueError("config: every dataset is switched off (mapped to null); configure at least one under `datasets:`")
DATASETS = list(config["datasets"])
for _name, _settings in config["datasets"].items():
    # A checkpoint's flags may leave image_size to the dataset (shapes cannot show it).
    _flags = _settings["diffusion"]["flags"]
    _flags.setdefault("image_size", _settings["image_size"] or 64)
    _model_size = _flags["image_size"]
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


def download_path(name):
    """Where download `name` lands: resources/downloads/<file name of its URL>."""
    url_path = urllib.parse.urlparse(config["downloads"][name]["url"]).path
    return f"resources/downloads/{PurePosixPath(url_path).name}"


def dataset_source(wildcards):
    """The dataset folder: the user's path, the generated embedded dataset, or, for a path
    inside an unpacked download (resources/<name>/...), that download's folder."""
    path = ds(wildcards)["path"]
    if path is None:
        return f"resources/{wildcards.dataset}/source"
    for name, download in config["downloads"].items():
        folder = f"resources/{name}"
        if download["unpack"] and PurePosixPath(path).is_relative_to(folder):
            return folder
    return path


def dataset_root(wildcards):
    """The folder holding the dataset's meta.json / real/ (params of prepare_dataset)."""
    return ds(wildcards)["path"] or dataset_source(wildcards)


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
        given = config["datasets"][dataset]["diffusion"]["checkpoint"]
        if wildcards.model == "ddpm":
            paths["checkpoint"] = given or f"results/{dataset}/diffusion/model.pt"
        elif given:  # the untrained control takes the given checkpoint's architecture
            paths["checkpoint"] = given
        return paths

    return inputs
