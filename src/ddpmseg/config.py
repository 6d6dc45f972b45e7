"""Checks of the workflow's config made when the Snakefile is parsed, before any job runs.

`schema_problem` turns the first (most relevant) schema violation into one line that names the
key path and what is allowed; `value_problems` checks what the schema cannot: model flags that
guided-diffusion does not know, decoder blocks the model does not have, diffusion steps it does
not take. Nothing here imports torch: planning a DAG needs none.
"""

import difflib
import re

import jsonschema
from jsonschema.exceptions import best_match

from ddpmseg import adm_flags
from ddpmseg.formats import READERS
from ddpmseg.formats.paper import PAPER


def key_path(path) -> str:
    """['datasets', 'a', 'features', 'blocks', 1] -> 'datasets.a.features.blocks[1]'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _unknown_keys_message(error) -> str:
    allowed = sorted(error.schema.get("properties", {}))
    unknown = sorted(set(error.instance) - set(allowed))
    unknown = [k for k in unknown if not any(re.match(p, k) for p in error.schema.get("patternProperties", {}))]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}"


def _describe(schema: dict) -> str:
    """A few words for what a sub-schema allows."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " or ".join(repr(v) for v in schema["enum"])
    if "$ref" in schema:
        return "a mapping of settings"
    kinds = schema.get("type", "any value")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "array":
            item = schema.get("items", {})
            item_kind = item.get("type", "value")
            bound = f" >= {item['minimum']}" if "minimum" in item else ""
            words.append(f"a list of {item_kind}s{bound}")
        else:
            words.append("null" if kind == "null" else f"a {kind}")
    return " or ".join(words)


def schema_problem(config: dict, schema: dict) -> str | None:
    """One line for the most relevant violation of `schema` by `config`, or None: the key path,
    the value and what is allowed, e.g. "datasets.a.ensemble: unknown key 'n_member' (did you
    mean 'n_members'?); allowed: batch_size, ..."."""
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    if error.validator == "additionalProperties":
        message = _unknown_keys_message(error)
    elif error.validator in ("anyOf", "oneOf"):
        options = [s for s in error.schema[error.validator] if s.get("type") != "null" or error.instance is None]
        message = f"{error.instance!r} is not allowed; give {' or '.join(_describe(s) for s in options)}"
    else:
        message = error.message
    return f"config: {key_path(error.absolute_path)}: {message}"


def _model_problems(name: str, settings: dict) -> list:
    """Flags, blocks and timesteps of one dataset that its diffusion model cannot have."""
    problems = []
    where = f"config: datasets.{name}"
    flags = settings["diffusion"]["flags"]
    problems += [f"{where}.diffusion.flags: {phrase}; {adm_flags.NAMES_HINT}"
                 for phrase in adm_flags.unknown_flags(flags)]
    steps = adm_flags.diffusion_steps(flags)
    known = adm_flags.blocks_known(flags, settings["diffusion"]["checkpoint"])
    n_blocks = len(adm_flags.decoder_blocks(flags)) if known else None
    features, probes = settings["features"], settings["probes"]
    lists = {
        "features.blocks": ("block", features["blocks"]), "features.timesteps": ("step", features["timesteps"]),
        "probes.blocks": ("block", probes["blocks"]), "probes.timesteps": ("step", probes["timesteps"]),
        "probes.kmeans.blocks": ("block", probes["kmeans"]["blocks"]),
        "probes.kmeans.timesteps": ("step", probes["kmeans"]["timesteps"]),
    }
    for key, (kind, values) in lists.items():
        if not isinstance(values, list):  # "auto" or null
            continue
        if kind == "step":
            bad = [t for t in values if t >= steps]
            if bad:
                problems.append(f"{where}.{key}: step {bad[0]} does not exist: the diffusion has {steps} steps "
                                f"(t in 0..{steps - 1}, flag diffusion_steps)")
        elif n_blocks is not None:
            bad = [b for b in values if b >= n_blocks]
            if bad:
                problems.append(f"{where}.{key}: block {bad[0]} does not exist: the model's decoder has {n_blocks} "
                                f"blocks (0..{n_blocks - 1}: levels x (num_res_blocks + 1) of its flags)")
    return problems


def _format_problems(name: str, settings: dict) -> list:
    """A dataset's `format` that no reader reads, and format-only keys on one in the paper's layout."""
    where = f"config: datasets.{name}"
    fmt = settings["format"]
    if fmt == PAPER:
        given = [key for key, default in (("unannotated", "auto"), ("split", {}), ("unlabeled", None),
                                                       ("added_labels", None))
                 if settings[key] != default]
        if isinstance(settings["classes"], dict):
            given.append("classes (a mapping)")
        return [f"{where}: {', '.join(given)} apply only to a dataset with a `format`; the paper's layout has "
                "fixed splits and class ids. Set the format, or remove them."] if given else []
    if fmt not in READERS:
        close = difflib.get_close_matches(fmt, READERS, n=1)
        return [f"{where}.format: unknown format {fmt!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; known: {', '.join(sorted(READERS))}"]
    if fmt != "image_mask" and isinstance(settings["classes"], list):
        return [f"{where}.classes: format {fmt} names its own classes; give a mapping (old name: new name, or "
                "null to drop) to rename, merge or drop them"]
    if settings["path"] is None:
        return [f"{where}: format {fmt} needs the `path` of the dataset's folder"]
    return []


def value_problems(config: dict) -> list:
    """One line per value the schema accepts but the workflow cannot run, over every dataset of a
    validated config (defaults set)."""
    problems = []
    for name, settings in config["datasets"].items():
        problems.extend(_format_problems(name, settings))
        try:
            problems.extend(_model_problems(name, settings))
        except (KeyError, ValueError) as exc:  # e.g. an image size without a default channel_mult
            problems.append(f"config: datasets.{name}.diffusion.flags: {exc}")
    return problems


def load_config(configfiles: list) -> dict:
    """The config Snakemake would run with from this folder: config.yaml where it is here (the
    Snakefile's `configfile:`), then each of ``configfiles`` merged over it as `--configfile`
    does, checked against the schema with its defaults filled in. UserError naming the file or
    the key where it cannot be used."""
    import pathlib

    import yaml
    from snakemake.utils import update_config, validate

    from ddpmseg.errors import UserError

    schema = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
    config = {}
    for path in [p for p in ["config.yaml"] if pathlib.Path(p).is_file()] + list(configfiles):
        try:
            update_config(config, yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{path}: cannot be read as a YAML config ({exc}); give the workflow's config file") \
                from exc
    problem = schema_problem(config, yaml.safe_load(schema.read_text(encoding="utf-8")))
    if problem:
        raise UserError(problem)
    validate(config, str(schema), set_default=True)
    return config
