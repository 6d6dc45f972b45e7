"""Settling the validated config: what the schema cannot say, decided once before anything is
planned. Every problem is a `ConfigProblem`: one line naming the key and the fix."""

from ddpmseg import adm_flags, backbones
from ddpmseg.config import value_problems
from ddpmseg.errors import DatasetError
from ddpmseg.methods import ConfigProblem, definitions


def settled_formats(config: dict) -> dict:
    """Every dataset's `format: auto` replaced by the format its folder is in (`formats.detect`;
    the paper's layout: 'paper'). Returns {dataset: (format name, why)} of those settled;
    ConfigProblem naming the dataset when its folder fits no format or several."""
    from ddpmseg.formats.detect import detect

    settled = {}
    for name, settings in config["datasets"].items():
        if settings is None or settings["format"] != "auto":
            continue
        if settings["path"] is None:
            raise ConfigProblem(f"config: datasets.{name}.format: auto needs the dataset's `path`")
        try:
            fmt, why = detect(settings["path"])
        except DatasetError as exc:
            raise ConfigProblem(f"config: datasets.{name}.format: auto: {exc}") from exc
        settings["format"] = fmt
        settled[name] = (fmt, why)
    return settled


def normalised(config: dict) -> dict:
    """The config with datasets mapped to null dropped and every dataset's image_size settled:
    a dataset's diffusion flags give it where the dataset does not, and where a method uses the
    dataset's diffusion model the two must agree (a source whose model is not the dataset's may
    take another input size than its features' resolution). Changes `config` in place."""
    config["datasets"] = {name: settings for name, settings in config["datasets"].items() if settings is not None}
    if not config["datasets"]:
        raise ConfigProblem("config: every dataset is switched off (mapped to null); configure at least one under "
                            "`datasets:`")
    uses_diffusion = any(backbones.source(d["source"]).DIFFUSION_STAGE for d in definitions(config).values())
    for name, settings in config["datasets"].items():
        flags = settings["diffusion"]["flags"]
        if not uses_diffusion and settings["image_size"]:
            flags["image_size"] = settings["image_size"]
        flags.setdefault("image_size", settings["image_size"] or adm_flags.DEFAULTS["image_size"])
        settings["image_size"] = settings["image_size"] or flags["image_size"]
        if settings["image_size"] != flags["image_size"]:
            raise ConfigProblem(f"config: dataset {name!r} has image_size {settings['image_size']} but its diffusion "
                                f"model flags have image_size {flags['image_size']}; set both to the model's "
                                "resolution.")
        seeds = settings["diffusion"]["seeds"]
        if settings["diffusion"]["checkpoint"] and len(seeds) > 1:
            raise ConfigProblem(f"config: datasets.{name}.diffusion.seeds lists {len(seeds)} seeds, but a given "
                                "checkpoint is one model; list one seed")
    for problem in value_problems(config):
        raise ConfigProblem(problem)
    return config


def chosen_method(given: str | None, plans: dict, where: str) -> str:
    """A setting that names a method (`given`, None: the first): ConfigProblem where it names none."""
    method = given or next(iter(plans))
    if method not in plans:
        raise ConfigProblem(f"{where} is {method!r}, not a method; give one of {', '.join(plans)}")
    return method


def chosen_seed(given: int | None, seeds: list, where: str) -> int:
    """A setting that names an MLP seed (None: the first): ConfigProblem where it is not configured."""
    seed = seeds[0] if given is None else given
    if seed not in seeds:
        raise ConfigProblem(f"{where} is {seed}, not one of the seeds {seeds}; give one of them")
    return seed
