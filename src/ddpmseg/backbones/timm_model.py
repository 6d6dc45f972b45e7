"""Any timm model with `forward_intermediates` as a feature source: the self-supervised ViTs
practitioners reach for (DINOv2 and DINOv3, with registers), EVA and CLIP ViTs, ConvNeXt, ResNet.

A model is named by its timm name with its pretrained tag (`vit_small_patch14_reg4_dinov2.lvd142m`).
Its weights are timm's pretrained ones (`pretrained: true`: timm downloads them from the Hugging
Face Hub into its cache, so the first run needs a network), a local weights file (`checkpoint`: the
model's state_dict as .safetensors, .pth or .bin, loaded through timm's own pretrained loader, which
adapts an official layout as it does for a download), or random weights from the model seed
(`pretrained: false`).

Layers are the entries of the model's `feature_info`, in forward order: a ViT's blocks
(`blocks.0` ..), a ConvNeXt's stages (`stages.0` ..), a ResNet's stem and layers (`act1`, `layer1`
..); the config names them or gives their index (negative from the end). The dataset's images are
resized (bilinear, antialiased when shrinking) to the input size of the model's pretrained config
(timm's `resolve_data_config`; `input_size` replaces it) and normalised by that config's mean and
std. Each layer gives a (C, h, h) map at its own resolution: a ViT's patch tokens on their grid
(class and register tokens dropped), a convolutional stage's output; the forward stops after the
deepest requested layer. Layer tables come from a forward on the `meta` device (shapes, no
numbers), so a config is checked at parse time without weights.
"""

import functools

from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, identity_settings, model_origin, model_settings, noise_shape,
    sweep_layers,
)

NAME = "timm"
TAKES_TIMESTEPS = False
NORMALISATION = "[0, 1]"  # the model's own mean and std are applied in `activations`
BUILT_FROM = ("any timm model with forward_intermediates (DINOv2/v3, EVA, CLIP ViTs, ConvNeXt, ResNet): timm's "
              "pretrained weights, a local weights file, or random")
PRETRAINED_BY_WORKFLOW = False
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = True
DEFAULT_LAYERS = 4  # the last 4 feature_info entries (DINOv2's multi-layer probes take a ViT's last 4 blocks)

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": {"description": "The timm model name with its pretrained tag, e.g. "
                                 "vit_small_patch14_reg4_dinov2.lvd142m, vit_small_patch16_dinov3.lvd1689m, "
                                 "convnext_tiny.fb_in22k, resnet50.a1_in1k.",
                  "type": "string", "minLength": 1, "default": "vit_small_patch14_reg4_dinov2.lvd142m"},
        "pretrained": {"description": "true = timm's pretrained weights of the tag (downloaded into timm's cache "
                                      "the first time); false = random weights from the model seed. Ignored when "
                                      "checkpoint is given.", "type": "boolean", "default": True},
        "checkpoint": {"description": "A local weights file of the model (state_dict as .safetensors, .pth or "
                                      ".bin), loaded through timm's pretrained loader; null = as pretrained says.",
                       "type": ["string", "null"], "default": None},
        "input_size": {"description": "Side of the square image the model is fed, in pixels (the dataset's images "
                                      "are resized to it); null = the model's pretrained config (518 for "
                                      "DINOv2, 224 for most ImageNet models).",
                       "anyOf": [{"type": "null"}, {"type": "integer", "minimum": 8}], "default": None},
        "layers": {"description": "feature_info entries by name (blocks.11, stages.3, layer4) or index (-1 = the "
                                  "last); null = the last 4; 'auto' = the best of the probe sweep.",
                   "anyOf": [{"type": "null"}, {"const": "auto"},
                             {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1}],
                   "default": None},
    },
}


def complete_settings(settings: dict, dataset_settings: dict) -> dict:
    """`settings` with a known model name (ValueError naming `model` otherwise), input_size made
    the pretrained config's where null, and layers given by index made names."""
    model = _meta_model(settings["model"], settings["input_size"])
    if settings["input_size"] is None:
        settings["input_size"] = model.ddpmseg_input_size
    if isinstance(settings["layers"], list):
        settings["layers"] = [_layer_name(model, layer) for layer in settings["layers"]]
    return settings


def layer_table(settings: dict, image_size: int) -> dict:
    """{feature_info module name: (channels, resolution)} in forward order, for input_size-sided
    inputs (whatever the dataset's image_size: images are resized to input_size)."""
    model = _meta_model(settings["model"], settings["input_size"])
    return dict(model.ddpmseg_layer_table)


def default_layers(settings: dict, image_size: int) -> list:
    """The last DEFAULT_LAYERS entries of the layer table (all of them where it has fewer)."""
    return list(layer_table(settings, image_size))[-DEFAULT_LAYERS:]


def _layer_name(model, layer) -> str:
    """A layer given by name or index (negative from the end) as its feature_info name."""
    names = [info["module"] for info in model.feature_info]
    if isinstance(layer, str):
        return layer  # checked against the table by the plan, which lists the names
    if not -len(names) <= layer < len(names):
        raise ValueError(f"layers: index {layer} is out of range: {model.ddpmseg_name} has {len(names)} layers "
                         f"(0..{len(names) - 1}, or -{len(names)}..-1 from the end): {', '.join(names)}")
    return names[layer]


@functools.lru_cache(maxsize=8)
def _meta_model(name: str, input_size: int | None):
    """The model `name` built on torch's meta device (no weights, no memory), with its input size
    (`input_size`, else its pretrained config's) as `ddpmseg_input_size` and its layer table at
    that size as `ddpmseg_layer_table`; ValueError naming `model` for a name timm does not know,
    a tag without pretrained weights, or a model without forward_intermediates."""
    import torch

    with torch.device("meta"):
        model = _create(name, input_size, pretrained=False)
    size = model.ddpmseg_input_size
    indices = list(range(len(model.feature_info)))
    maps = model.forward_intermediates(torch.empty(1, 3, size, size, device="meta"), indices=indices,
                                       intermediates_only=True)
    table = {}
    for info, fmap in zip(model.feature_info, maps):
        if fmap.ndim != 4 or fmap.shape[2] != fmap.shape[3]:
            raise ValueError(f"model: {name} gives layer {info['module']} as {tuple(fmap.shape)}, not a square "
                             "(C, h, h) map")
        table[info["module"]] = (int(fmap.shape[1]), int(fmap.shape[2]))
    model.ddpmseg_layer_table = table
    return model


def _create(name: str, input_size: int | None, pretrained: bool, weights_file=None):
    """timm.create_model(name) without a classifier, ViTs built for input_size-sided inputs; the
    model carries ddpmseg_name, ddpmseg_input_size and ddpmseg_mean / ddpmseg_std (its pretrained
    config's). ValueError naming `model` where timm cannot give it."""
    import timm
    from timm.models import split_model_name_tag

    architecture, tag = split_model_name_tag(name)
    if not timm.is_model(architecture):
        import difflib

        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; timm.list_models('*dinov2*') lists names"
        raise ValueError(f"model: timm has no model {architecture!r}{hint}")
    if tag and name not in timm.list_pretrained(f"{architecture}.*"):
        raise ValueError(f"model: {architecture} has no pretrained tag {tag!r}; it has "
                         f"{', '.join(timm.list_pretrained(f'{architecture}.*')) or 'none'}")
    import torch

    with torch.device("meta"):  # the architecture's pretrained config, before any weights are read
        probe = timm.create_model(name, pretrained=False, num_classes=0)
    if not hasattr(probe, "forward_intermediates"):
        raise ValueError(f"model: {name} has no forward_intermediates in timm {timm.__version__}; choose a ViT, "
                         "EVA, ConvNeXt or ResNet")
    config = timm.data.resolve_data_config({}, model=probe)
    default_size = int(config["input_size"][-1])
    options = {"num_classes": 0}
    if input_size is not None and input_size != default_size and hasattr(probe, "patch_embed"):
        options["img_size"] = input_size  # a ViT's position embedding for that grid (resampled from pretrained)
    if pretrained and weights_file is not None:
        options["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    model = timm.create_model(name, pretrained=pretrained, **options)
    model.ddpmseg_name = name
    model.ddpmseg_input_size = input_size or default_size
    model.ddpmseg_mean, model.ddpmseg_std = tuple(config["mean"]), tuple(config["std"])
    return model


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """The model in eval mode on `device`: the checkpoint's weights (through timm's pretrained
    loader), timm's pretrained weights (settings.pretrained), or random ones after
    torch.manual_seed(seed). A weights file that does not fit raises CheckpointError naming it."""
    import torch

    from ddpmseg.errors import CheckpointError

    torch.manual_seed(seed)
    if checkpoint is None:
        model = _create(settings["model"], settings["input_size"], pretrained=settings["pretrained"])
    else:
        try:
            model = _create(settings["model"], settings["input_size"], pretrained=True, weights_file=checkpoint)
        except (RuntimeError, OSError, KeyError) as error:
            first = str(error).strip().splitlines()[0][:300]
            raise CheckpointError(f"{checkpoint}: not a weights file of {settings['model']} ({first}); give the "
                                  "state_dict timm saves for that model (e.g. torch.save(model.state_dict()) or "
                                  "the file timm downloads)") from error
    return model.to(device).eval()


def activations(model, x, layers, timesteps=None, noise=None) -> dict:
    """{(layer, None): (B, C, h, h) float32}: each requested feature_info entry's map.

    x: (B, 3, S, S) float32 in [0, 1]; it is resized to the model's input size and normalised by
    its pretrained mean and std. timm's forward_intermediates gives the maps (no final norm,
    prefix tokens dropped) and stops after the deepest one."""
    import torch
    import torch.nn.functional as F

    names = [info["module"] for info in model.feature_info]
    unknown = sorted(set(layers) - set(names))
    if unknown:
        raise ValueError(f"unknown {model.ddpmseg_name} layer {unknown[0]!r}; it has {', '.join(names)}")
    size = model.ddpmseg_input_size
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
    mean = torch.tensor(model.ddpmseg_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(model.ddpmseg_std, device=x.device).view(1, 3, 1, 1)
    wanted = sorted(names.index(layer) for layer in set(layers))
    with torch.no_grad():
        maps = model.forward_intermediates((x - mean) / std, indices=wanted, intermediates_only=True,
                                           stop_early=True)
    return {(names[i], None): fmap.float() for i, fmap in zip(wanted, maps)}
