"""SwAV ResNet activations: the paper's SwAV baseline (its `FeatureExtractorSwAV`), from an
official checkpoint or pretrained by the workflow with SwAV on the unlabeled images.

The paper's code (its `feature_extractors.py`) runs a torchvision ResNet-50 (`fc` = Identity) on
ImageNet-normalised images and keeps the INPUTS of every other bottleneck of layer1..layer4
(`layer[::2]`): 6720 features a pixel at 256x256, 13440 for SwAV's twice-wider `resnet50w2`.
Layer `layer<i>.<j>` is the input of block j of layer i. The model (`backbones.resnet`) is made
of timm's ResNet blocks with torchvision's parameter names, so the official DataParallel checkpoints
({'state_dict': {'module.conv1.weight', ..., 'module.projection_head.*', 'module.prototypes.*'}})
load; their projection head and prototypes are dropped, as the paper's non-strict load does.

`arch` gives the ResNet: RN50 = bottleneck [3, 4, 6, 3] width 64, RN50w2 = the same with width
128 (every width doubled, the stem's too). The default is a small basic-block ResNet that the
workflow can pretrain on a few hundred images on a CPU.
"""

import logging
import math
import random

from ddpmseg.backbones import pretraining_budget
from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_settings,
    noise_shape, sweep_layers,
)
from ddpmseg.backbones.resnet import EXPANSION, block_inputs, checkpoint_arch, resnet

NAME = "SwAV"
TAKES_TIMESTEPS = False
NORMALISATION = "imagenet"
BUILT_FROM = ("a SwAV ResNet checkpoint ({'state_dict': {'module.…'}}), or pretrained by the workflow with SwAV "
              "on the unlabeled images")
PRETRAINED_BY_WORKFLOW = True
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = True

log = logging.getLogger(__name__)

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "checkpoint": {
            "description": "A SwAV checkpoint (.pth, {'state_dict': {'module.…'}}, e.g. the paper's "
                           "models/swav_checkpoints/<name>.pth); null = pretrained by the workflow.",
            "type": ["string", "null"],
            "default": None,
        },
        "layers": {
            "description": "Block inputs as layer<i>.<j> (input of block j of layer i). null = the paper's: every "
                           "other block of each layer (layer1.0, layer1.2, layer2.0, ...); 'auto' = the best of "
                           "the probe sweep.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "arch": {
            "description": "The ResNet. RN50 = bottleneck [3, 4, 6, 3] width 64; RN50w2 = bottleneck [3, 4, 6, 3] "
                           "width 128.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "block": {"description": "Residual block: bottleneck (expansion 4) or basic (expansion 1).",
                          "enum": ["bottleneck", "basic"], "default": "basic"},
                "blocks": {"description": "Blocks in layer1..layer4.",
                           "type": "array", "items": {"type": "integer", "minimum": 1},
                           "minItems": 4, "maxItems": 4, "default": [1, 1, 1, 1]},
                "width": {"description": "Stem width and layer1's planes; each later layer doubles them.",
                          "type": "integer", "minimum": 1, "default": 32},
            },
            "default": {},
        },
        "train": {
            "description": "SwAV pretraining on the unlabeled images (when no checkpoint is given); Adam optimiser.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **pretraining_budget(1000),
                "batch_size": {"description": "Images a step (each gives global_crops + local_crops views).",
                               "type": "integer", "minimum": 2, "default": 32},
                "lr": {"description": "Adam learning rate.", "type": "number", "exclusiveMinimum": 0,
                       "default": 1e-3},
                "global_crops": {"description": "High-resolution crops an image, at the image size.",
                                 "type": "integer", "minimum": 2, "default": 2},
                "local_crops": {"description": "Low-resolution crops an image, at local_crop_fraction of the "
                                              "image size.",
                                "type": "integer", "minimum": 0, "default": 4},
                "local_crop_fraction": {"description": "Side of a local crop / side of the image.",
                                        "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5},
                "prototypes": {"description": "Number of prototypes (clusters).",
                               "type": "integer", "minimum": 2, "default": 256},
                "projection_dim": {"description": "Output size of the projection head (prototype dimension).",
                                   "type": "integer", "minimum": 1, "default": 64},
                "hidden_dim": {"description": "Hidden size of the projection head.",
                               "type": "integer", "minimum": 1, "default": 256},
                "temperature": {"description": "Softmax temperature of the swapped prediction.",
                                "type": "number", "exclusiveMinimum": 0, "default": 0.1},
                "sinkhorn_iterations": {"description": "Sinkhorn-Knopp iterations computing the codes.",
                                        "type": "integer", "minimum": 1, "default": 3},
                "sinkhorn_epsilon": {"description": "Entropy weight of the Sinkhorn-Knopp codes: smaller = sharper codes.",
                                     "type": "number", "exclusiveMinimum": 0, "default": 0.05},
                "freeze_prototypes_steps": {"description": "Steps during which the prototypes are not trained.",
                                            "type": "integer", "minimum": 0, "default": 50},
                "queue_length": {"description": "Embeddings of past batches kept per global crop (SwAV's queue for "
                                                "small batches): their prototype scores join each batch's in the "
                                                "Sinkhorn-Knopp codes once the queue is full. 0 = no queue.",
                                 "type": "integer", "minimum": 0, "default": 2048},
                "seed": {"description": "Seeds the weights, the batches and the augmentations.",
                         "type": "integer", "minimum": 0, "default": 0},
            },
            "default": {},
        },
    },
}

HEAD_PREFIXES = ("projection_head.", "prototypes.", "fc.")  # tensors of a checkpoint that are not the backbone


def layer_table(settings: dict, image_size: int) -> dict:
    """{'layer<i>.<j>': (channels, resolution)}: the input of every block of the ResNet of
    settings['arch'], in forward order (`resnet.block_inputs`)."""
    return block_inputs(settings["arch"], image_size)


def default_layers(settings: dict, image_size: int) -> list:
    """The paper's layers: the inputs of every other block of each layer (`layer[::2]`)."""
    return [f"layer{i}.{j}" for i, n in enumerate(settings["arch"]["blocks"], start=1) for j in range(0, n, 2)]


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """The ResNet of settings['arch'] (no classifier) in eval mode on `device`.

    checkpoint: a path to a SwAV checkpoint (any layout `checkpoints.load_state_dict` reads; its
    projection head, prototypes and fc are ignored), or None: random weights after
    torch.manual_seed(seed). A file whose backbone differs from the settings' raises
    CheckpointError naming the file, the first differing tensor and the arch setting that
    probably differs.
    """
    import torch

    from ddpmseg.checkpoints import first_shape_mismatch, load_state_dict
    from ddpmseg.errors import CheckpointError

    arch = settings["arch"]
    if checkpoint is None:
        torch.manual_seed(seed)
        return resnet(arch).to(device).eval()
    state = {k: v for k, v in load_state_dict(checkpoint, "methods.<method>.checkpoint").items()
             if not k.startswith(HEAD_PREFIXES)}
    with torch.device("meta"):
        expected = resnet(arch).state_dict()
    # BatchNorm's step counters are absent from some checkpoints and play no part in eval mode.
    expected = {k: v for k, v in expected.items() if k in state or not k.endswith("num_batches_tracked")}
    mismatch = first_shape_mismatch(expected, state)
    if mismatch:
        name, in_checkpoint, built = mismatch
        found = checkpoint_arch(state)
        if found is None:
            hint = ("it holds no ResNet: a SwAV checkpoint has tensors conv1.weight, bn1.*, layer1.0.conv1.weight, ... "
                    "(a 'module.' prefix is fine)")
        else:
            differing = [f"arch.{key} (the checkpoint's says {found[key]!r})" for key in ("width", "block", "blocks")
                         if found[key] != arch[key]]
            hint = "check " + (", ".join(differing) if differing else "that it is a torchvision-style ResNet")
        raise CheckpointError(
            f"{checkpoint}: tensor {name!r} is {in_checkpoint or 'absent'} in the checkpoint, the settings build "
            f"{built or 'no such tensor'}; {hint}. "
            "RN50 is arch {block: bottleneck, blocks: [3, 4, 6, 3], width: 64}, RN50w2 the same with width 128.")
    model = resnet(arch)
    model.load_state_dict(state, strict=False)  # every tensor checked above; only step counters may be absent
    return model.to(device).eval()


def activations(model, x, layers, timesteps=None, noise=None) -> dict:
    """{(layer, None): (B, C, h, w) float32}: the input of each requested block.

    x: (B, 3, S, S) float32, ImageNet-normalised. The stem and the blocks run in order and stop
    at the deepest requested block's input (it and later blocks never run). An unknown layer
    raises ValueError listing the model's layers.
    """
    import torch

    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    blocks = [(f"layer{i}.{j}", block) for i, stage in enumerate(stages, start=1) for j, block in enumerate(stage)]
    order = [name for name, _ in blocks]
    unknown = sorted(set(layers) - set(order))
    if unknown:
        raise ValueError(f"unknown SwAV layer {unknown[0]!r}; this ResNet has {', '.join(order)}")
    deepest = max(order.index(layer) for layer in layers)
    maps = {}
    with torch.no_grad():
        h = model.maxpool(model.act1(model.bn1(model.conv1(x))))
        for name, block in blocks[:deepest]:
            if name in layers:
                maps[name, None] = h.float()
            h = block(h)
    maps[order[deepest], None] = h.float()
    return maps


def pretrain(settings: dict, images, device: str):
    """SwAV (Caron et al. 2020) on unlabeled images; returns (checkpoint, loss_rows, outcome).

    images: (N, S, S, 3) uint8. Each step draws train.batch_size images (with replacement) and
    makes lightly's SwaVTransform multi-crop views of each: train.global_crops at S and
    train.local_crops at local_crop_fraction * S (random resized crops, flips, colour jitter,
    grey scale, blur, ImageNet normalisation). Backbone pooled output -> projection head -> L2
    normalisation -> prototypes (re-normalised every step, frozen for freeze_prototypes_steps);
    lightly's SwaVLoss (Sinkhorn-Knopp codes of the global crops predicted from the other
    views); Adam. Everything is seeded from train.seed (torch, numpy and Python `random`) and
    augmented in this process, so on a CPU two calls give bit-identical weights.

    checkpoint: the official layout {'state_dict': {'module.<backbone key>', 'module.projection_head.*',
    'module.prototypes.*'}} (float32, CPU), which `build` loads; loss_rows: dicts {step, seconds,
    loss} every train.log_every steps (loss: mean SwAV loss over those steps); outcome: {steps,
    max_steps, max_minutes, stopped_by: "max_steps" | "max_minutes", seconds, seed, torch_threads,
    uniform_assignment_loss: ln(prototypes), the loss of a collapsed model that predicts every
    prototype alike}.
    Raises RuntimeError when the loss is not finite.
    """
    import torch
    from lightly.loss import SwaVLoss
    from PIL import Image

    from ddpmseg.training import TrainingRecord

    train = settings["train"]
    seed, max_steps, max_minutes = train["seed"], train["max_steps"], train["max_minutes"]
    size = images.shape[1]
    rng = _seed_pretraining(seed)
    networks = _swav_networks(settings["arch"], train, device)
    queues = _queues(train, device)
    criterion = SwaVLoss(temperature=train["temperature"], sinkhorn_iterations=train["sinkhorn_iterations"],
                         sinkhorn_epsilon=train["sinkhorn_epsilon"])
    parameters = [parameter for network in networks for parameter in network.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=train["lr"])
    transform = _multi_crop_transform(train, size)
    pil_images = [Image.fromarray(image) for image in images]

    record = TrainingRecord("SwAV pretraining", "train.lr", max_steps, max_minutes, train["log_every"], seed, log)
    for step in range(1, max_steps + 1):
        loss = _swav_loss(networks, queues, criterion, transform, pil_images, rng, train, step, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if record.step(step, loss.item()):
            break
    outcome = {**record.outcome(), "uniform_assignment_loss": math.log(train["prototypes"])}
    return _official_checkpoint(networks), record.rows, outcome


def _seed_pretraining(seed: int):
    """Seeds Python's `random`, numpy's and torch's global generators with `seed`; returns a numpy
    Generator of its own from `seed` (the batches)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)  # lightly's GaussianBlur draws from numpy's global generator
    torch.manual_seed(seed)  # the weights and torchvision's random crops, flips and jitter
    return np.random.default_rng(seed)  # the batches


def _swav_networks(arch: dict, train: dict, device: str) -> tuple:
    """(backbone, projection head, prototypes) on `device`, in that order from torch's global
    generator: the ResNet of `arch` (train mode) pooling to 8 * width * expansion channels (layer4's
    output), lightly's SwaVProjectionHead to train.projection_dim through train.hidden_dim (train
    mode), and train.prototypes SwaVPrototypes, frozen for train.freeze_prototypes_steps steps."""
    from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes

    backbone = resnet(arch).to(device).train()
    pooled_channels = 8 * arch["width"] * EXPANSION[arch["block"]]  # layer4's output
    head = SwaVProjectionHead(pooled_channels, train["hidden_dim"], train["projection_dim"]).to(device).train()
    prototypes = SwaVPrototypes(train["projection_dim"], train["prototypes"],
                                n_steps_frozen_prototypes=train["freeze_prototypes_steps"]).to(device)
    return backbone, head, prototypes


def _queues(train: dict, device: str) -> list:
    """One lightly MemoryBankModule a global crop, of train.queue_length L2-normalised embeddings
    (train.projection_dim wide), starting as random unit vectors from torch's global generator;
    [] without a queue."""
    from lightly.models.modules.memory_bank import MemoryBankModule

    if not train["queue_length"]:
        return []
    return [MemoryBankModule((train["queue_length"], train["projection_dim"]), feature_dim_first=False).to(device)
            for _ in range(train["global_crops"])]


def _multi_crop_transform(train: dict, size: int):
    """lightly's SwaVTransform of an S x S image (S = `size`): train.global_crops crops at S, then
    train.local_crops at max(1, round(local_crop_fraction * S)), each a (3, s, s) float32 tensor."""
    from lightly.transforms.swav_transform import SwaVTransform

    return SwaVTransform(crop_sizes=(size, max(1, round(train["local_crop_fraction"] * size))),
                         crop_counts=(train["global_crops"], train["local_crops"]))


def _swav_loss(networks: tuple, queues: list, criterion, transform, pil_images: list, rng, train: dict, step: int,
               device: str):
    """The SwAV loss (a scalar float32 tensor) of optimiser step `step` (1-based): train.batch_size
    images drawn by `rng` with replacement, their multi-crop views, the prototypes re-normalised,
    and `criterion` on the global views' prototype scores and the local ones'. Each global view's
    embeddings enter its queue; once the queue has been filled by real embeddings (step >
    queue_length / batch_size), the scores of its previous contents join the codes' batch."""
    import torch

    backbone, head, prototypes = networks
    n_global = train["global_crops"]
    crops = [transform(pil_images[i]) for i in rng.integers(0, len(pil_images), train["batch_size"])]
    views = [torch.stack([image_crops[v] for image_crops in crops]) for v in range(len(crops[0]))]
    prototypes.normalize()
    high_embeddings = _embeddings(networks, views[:n_global], device)
    high = [prototypes(z, step - 1) for z in high_embeddings]
    low = [prototypes(z, step - 1) for z in _embeddings(networks, views[n_global:], device)] if train["local_crops"] else []
    queued = None
    if queues:
        with torch.no_grad():
            past = [queue(z.detach(), update=True)[1] for queue, z in zip(queues, high_embeddings)]
            if step > train["queue_length"] / train["batch_size"]:
                queued = [prototypes(z, step - 1) for z in past]
    return criterion(high, low, queued)


def _embeddings(networks: tuple, views: list, device: str) -> list:
    """L2-normalised projections (B, projection_dim) of each view, one forward for views of one crop size."""
    import torch

    backbone, head, _ = networks
    return list(torch.nn.functional.normalize(head(backbone(torch.cat(views).to(device))), dim=1).chunk(len(views)))


def _official_checkpoint(networks: tuple) -> dict:
    """The networks' tensors in SwAV's DataParallel layout, detached float32 copies on the CPU:
    {'state_dict': {'module.<backbone key>', 'module.projection_head.*', 'module.prototypes.*'}}."""
    backbone, head, prototypes = networks
    parts = {"": backbone, "projection_head.": head, "prototypes.": prototypes}
    state = {f"module.{prefix}{key}": tensor.detach().cpu().clone()
             for prefix, module in parts.items() for key, tensor in module.state_dict().items()}
    return {"state_dict": state}
