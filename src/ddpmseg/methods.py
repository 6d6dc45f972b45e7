"""Methods (rows of Table 2) resolved per dataset from the config: a feature source, its
settings, its layers and timesteps, and where its model comes from. Nothing here imports torch:
the Snakefile plans every job from these plans.

`methods:` in the config is a list of built-in method keys (`BUILTIN`) or a mapping key ->
definition (null switches a method off): {source: <a key of backbones.SOURCES>, name: <table
row>, <the source's settings>}; a built-in key needs no source. A dataset's
`methods.<key>` mapping overrides the settings for that dataset (e.g. its checkpoint). What a
source takes from the dataset's config (the ADM: its `diffusion` section, `features.blocks`) is
the source's own `complete_settings` and `model_origin`.
"""

import copy
import dataclasses
import re

import jsonschema

from ddpmseg import backbones
from ddpmseg.config import schema_problem
from ddpmseg.errors import UserError

BUILTIN = {
    "ddpm": {"source": "adm"},
    "unet_untrained": {"source": "adm", "name": "UNet (untrained)", "weights": "random"},
    "dift": {"source": "stable_diffusion", "name": "DIFT (SD)", "layers": ["up1"], "timesteps": [261], "noise_draws": 8},
    "mae": {"source": "mae"},
    "swav": {"source": "swav"},
    "pixels": {"source": "pixels"},
    "patch": {"source": "patch"},
}
METHOD_KEY = re.compile(r"^[a-z][a-z0-9_]*$")  # a folder name; never ending in _m<d> (model seed folders)


class ConfigProblem(ValueError):
    """One line naming the config key and the fix."""


def with_defaults(schema: dict, value):
    """A copy of `value` with every missing property that has a schema default filled in, in
    nested objects too (what Snakemake's validate(set_default=True) does for the main config)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = with_defaults(sub, value[key])
    return value


def definitions(config: dict) -> dict:
    """{method key: definition} of the configured methods: built-in keys in `BUILTIN`'s order,
    then the others in config order (a --configfile's mapping merged over config.yaml's may come
    in either order); raises ConfigProblem."""
    methods = config["methods"]
    if isinstance(methods, list):
        unknown = [m for m in methods if m not in BUILTIN]
        if unknown:
            raise ConfigProblem(f"config: methods: {unknown[0]!r} is not a built-in method ({', '.join(BUILTIN)}); "
                                "define it in the mapping form: methods: {" + f"{unknown[0]}: " + "{source: ...}}")
        methods = {m: {} for m in methods}
    result = {}
    for key, definition in methods.items():
        if definition is None:
            continue
        if not METHOD_KEY.match(key) or re.search(r"_m\d+$", key):
            raise ConfigProblem(f"config: methods.{key}: a method key is lower-case letters, digits and _, and does "
                                "not end in _m<digits> (those are model-seed folders)")
        definition = {**BUILTIN.get(key, {}), **definition}
        if "source" not in definition:
            raise ConfigProblem(f"config: methods.{key}: give its feature source (source: one of "
                                f"{', '.join(backbones.SOURCES)}); only built-in methods ({', '.join(BUILTIN)}) "
                                "have one already")
        if definition["source"] not in backbones.SOURCES:
            raise ConfigProblem(f"config: methods.{key}.source: unknown feature source {definition['source']!r}; "
                                f"known: {', '.join(backbones.SOURCES)}")
        result[key] = definition
    if not result:
        raise ConfigProblem("config: methods: every method is switched off; configure at least one")
    return {key: result[key] for key in sorted(result, key=lambda k: list(BUILTIN).index(k) if k in BUILTIN else len(BUILTIN))}


def _settings(key: str, definition: dict, dataset: str, dataset_settings: dict) -> dict:
    """The method's settings on one dataset, validated against its source's schema, defaults set."""
    source = backbones.source(definition["source"])
    given = {k: v for k, v in definition.items() if k not in ("source", "name")}
    override = (dataset_settings.get("methods") or {}).get(key) or {}
    for where, settings in ((f"methods.{key}", given), (f"datasets.{dataset}.methods.{key}", override)):
        if "timesteps" in settings and not source.TAKES_TIMESTEPS:
            raise ConfigProblem(f"config: {where}.timesteps: source {definition['source']!r} takes no diffusion "
                                "timesteps; remove the key")
        problem = schema_problem(settings, source.SETTINGS)
        if problem:
            raise ConfigProblem(problem.replace("config: ", f"config: {where}.", 1).replace(".(top level)", ""))
    return with_defaults(source.SETTINGS, _merge(given, override))


def _merge(base: dict, update: dict) -> dict:
    """`base` updated by `update`, recursively for nested mappings."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)
    return merged


@dataclasses.dataclass(frozen=True)
class MethodPlan:
    """What the workflow needs of one method on one dataset. `key`: the method's key in
    `methods:`; `source`: a key of `backbones.SOURCES`; `name`: its row in the tables;
    `settings`: the source's settings, completed from the dataset; `layers`: names, or 'auto';
    `timesteps`: ints, 'auto', or None for a source without them; `table`: {layer: [channels,
    resolution]}, None where only the checkpoint tells; `checkpoint`: a given file or None;
    `model_seeds`; `pretrain`: the workflow pretrains it (no checkpoint given); `stage_trained`:
    the diffusion stage trains it when no checkpoint is given. A rule passes it to its script,
    and a segmenter bundle stores it, as `as_dict()` (plain data); `MethodPlan(**d)` reads it back."""

    key: str
    source: str
    name: str
    settings: dict
    layers: list | str | None = None
    timesteps: list | str | None = None
    table: dict | None = None
    checkpoint: str | None = None
    model_seeds: list = dataclasses.field(default_factory=lambda: [0])
    pretrain: bool = False
    stage_trained: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan(key: str, definition: dict, dataset: str, dataset_settings: dict) -> MethodPlan:
    """The `MethodPlan` of one method on one dataset: the source's `complete_settings` and
    `model_origin` (`backbones.contract`). Raises ConfigProblem naming the key of an unknown
    layer or timestep."""
    source = backbones.source(definition["source"])
    settings = _completed_settings(key, definition, dataset, dataset_settings)
    origin = source.model_origin(settings, dataset_settings)
    size = dataset_settings["image_size"]
    table = {layer: list(shape) for layer, shape in _source_call(source.layer_table, key, dataset, settings,
                                                                 size).items()} if origin["table_known"] else None
    return MethodPlan(
        key=key, source=definition["source"], name=definition.get("name", source.NAME), settings=settings,
        layers=_checked_layers(key, dataset, settings, table, definition["source"]),
        timesteps=_checked_timesteps(key, dataset, settings, source), table=table,
        checkpoint=origin["checkpoint"], model_seeds=origin["model_seeds"],
        pretrain=source.PRETRAINED_BY_WORKFLOW and origin["checkpoint"] is None and settings.get("weights") != "random",
        stage_trained=origin["stage_trained"],
    )


def _completed_settings(key: str, definition: dict, dataset: str, dataset_settings: dict) -> dict:
    """The method's settings completed from the dataset (`complete_settings`), null layers made
    the source's default layers ('auto' with 'auto' timesteps)."""
    source = backbones.source(definition["source"])
    settings = _source_call(source.complete_settings, key, dataset, _settings(key, definition, dataset, dataset_settings),
                            dataset_settings)
    if settings["layers"] is None:
        settings["layers"] = "auto" if settings.get("timesteps") == "auto" else _source_call(
            source.default_layers, key, dataset, settings, dataset_settings["image_size"])
    if source.TAKES_TIMESTEPS and (settings["layers"] == "auto") != (settings["timesteps"] == "auto"):
        raise ConfigProblem(f"config: datasets.{dataset} method {key}: layers and timesteps must both be 'auto' "
                            "(the sweep picks (layer, timestep) cells) or both be lists")
    return settings


def _checked_layers(key: str, dataset: str, settings: dict, table: dict | None, source_name: str):
    """The method's layers without repeats ('auto' as it is); ConfigProblem for a layer the table lacks."""
    layers = settings["layers"]
    if layers == "auto":
        return layers
    unknown = [layer for layer in layers if table is not None and layer not in table]
    if unknown:
        raise ConfigProblem(f"config: datasets.{dataset} method {key}: layer {unknown[0]!r} does not exist; "
                            f"{source_name} has {', '.join(table)}")
    return list(dict.fromkeys(layers))


def _checked_timesteps(key: str, dataset: str, settings: dict, source):
    """The method's timesteps sorted without repeats (None for a source without, 'auto' as it
    is); ConfigProblem for one beyond the source's noise schedule."""
    timesteps = settings.get("timesteps") if source.TAKES_TIMESTEPS else None
    if timesteps in (None, "auto"):
        return timesteps
    length = _source_call(source.schedule_length, key, dataset, settings)
    beyond = [t for t in timesteps if t >= length]
    if beyond:
        raise ConfigProblem(f"config: datasets.{dataset} method {key}: timestep {beyond[0]} does not exist: "
                            f"its noise schedule has {length} steps (t in 0..{length - 1})")
    return sorted(set(timesteps))


def _source_call(function, key: str, dataset: str, *args):
    """function(*args) of a source (its layer table, default layers or schedule length from
    settings and the image size), a checkpoint or size problem raised as one ConfigProblem line
    naming the method."""
    try:
        return function(*args)
    except (UserError, ValueError) as exc:
        raise ConfigProblem(f"config: datasets.{dataset} method {key}: {exc}") from exc


def plans(config: dict) -> dict:
    """{dataset: {method key: plan}} for every configured dataset and method; raises ConfigProblem."""
    methods = definitions(config)
    return {dataset: {key: plan(key, definition, dataset, settings) for key, definition in methods.items()}
            for dataset, settings in config["datasets"].items()}


def validate_source_schemas() -> None:
    """Every source's SETTINGS is a valid JSON schema whose defaults satisfy it (a test calls this)."""
    for name in backbones.SOURCES:
        schema = backbones.source(name).SETTINGS
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(with_defaults(schema, {}), schema)
