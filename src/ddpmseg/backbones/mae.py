"""MAE: the encoder blocks of a masked-autoencoder ViT (He et al. 2022), the paper's strongest
baseline.

The paper's code (`FeatureExtractorMAE`) runs `MaskedAutoencoderViT` (ViT-L/8 at 256: embed
1024, depth 24, 16 heads) with mask ratio 0, hooks the outputs of its last 12 encoder blocks
(before the final norm), drops the cls token and reshapes the patch tokens, restored to image
order, to the 32x32 patch grid: 12 x 1024 = 12288 features a pixel. Mask ratio 0 shuffles the
tokens and restores them afterwards; attention does not depend on the order of its tokens, so we
run the tokens in image order and get the same maps up to float rounding.

Layer `block<i>` is the output of encoder block i (0 = the first). The encoder is timm's
`VisionTransformer`, whose tensor names are those of the official checkpoints; pretraining
uses lightly's MAE modules and saves the official layout ({'model': state_dict}, encoder and
decoder). The default architecture (`arch`) is a small ViT for 64x64 images; the paper's is
patch_size 8, embed_dim 1024, depth 24, num_heads 16.
"""

import logging
import math

from ddpmseg.backbones import pretraining_budget
from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_settings,
    noise_shape, sweep_layers,
)

NAME = "MAE"
TAKES_TIMESTEPS = False
NORMALISATION = "imagenet"
BUILT_FROM = ("a MaskedAutoencoderViT checkpoint ({'model': state_dict}), or pretrained by the workflow on "
              "the unlabeled images")
PRETRAINED_BY_WORKFLOW = True
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = True

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "checkpoint": {
            "description": "A MaskedAutoencoderViT checkpoint ({'model': state_dict}, e.g. the official "
                           "mae_pretrain_vit_large.pth layout) whose encoder matches `arch`; null = pretrained by "
                           "the workflow on the dataset's unlabeled images with `train`.",
            "type": ["string", "null"],
            "default": None,
        },
        "layers": {
            "description": "Encoder blocks as block<i> (block0 = the first). null = the last half of the blocks "
                           "(the paper: the last 12 of 24); 'auto' = the best layers of the probe sweep.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "arch": {
            "description": "The encoder ViT (LayerNorm eps 1e-6, a cls token, fixed 2D sin-cos positions). The "
                           "default is a small ViT for 64x64 images; the paper's ViT-L/8 is patch_size 8, "
                           "embed_dim 1024, depth 24, num_heads 16.",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "patch_size": {"description": "Patch side in pixels; must divide the image size.",
                               "type": "integer", "minimum": 1, "default": 4},
                "embed_dim": {"description": "Token width (the channels of every layer); divisible by num_heads "
                                             "and by 4 (the sin-cos positions).",
                              "type": "integer", "minimum": 4, "default": 192},
                "depth": {"description": "Number of encoder blocks.", "type": "integer", "minimum": 1, "default": 6},
                "num_heads": {"description": "Attention heads per block.", "type": "integer", "minimum": 1,
                              "default": 3},
                "mlp_ratio": {"description": "MLP hidden width over embed_dim (encoder and decoder).",
                              "type": "number", "exclusiveMinimum": 0, "default": 4.0},
            },
        },
        "train": {
            "description": "MAE pretraining on the dataset's unlabeled images (when `checkpoint` is null).",
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                **pretraining_budget(1000),
                "batch_size": {"description": "Images per step.", "type": "integer", "minimum": 1, "default": 32},
                "lr": {"description": "AdamW learning rate (constant).", "type": "number", "exclusiveMinimum": 0,
                       "default": 1.5e-4},
                "weight_decay": {"description": "AdamW weight decay, on weight matrices only (as MAE: not on "
                                                "biases and norms).",
                                 "type": "number", "minimum": 0, "default": 0.05},
                "mask_ratio": {"description": "Fraction of the patches masked (MAE: 0.75).", "type": "number",
                               "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.75},
                "norm_pix_loss": {"description": "Reconstruct each patch normalised by its own mean and variance "
                                                 "(MAE's norm_pix_loss, the paper's checkpoint).",
                                  "type": "boolean", "default": True},
                "random_flip": {"description": "Flip each drawn image horizontally with probability 1/2.",
                                "type": "boolean", "default": True},
                "decoder_embed_dim": {"description": "Decoder token width (the paper's: 512).", "type": "integer",
                                      "minimum": 4, "default": 128},
                "decoder_depth": {"description": "Decoder blocks (the paper's: 8).", "type": "integer", "minimum": 1,
                                  "default": 2},
                "decoder_num_heads": {"description": "Decoder attention heads (the paper's: 16).", "type": "integer",
                                      "minimum": 1, "default": 4},
                "seed": {"description": "Seeds the initialisation, the batches, flips and masks.", "type": "integer",
                         "minimum": 0, "default": 0},
            },
        },
    },
}

# Official MaskedAutoencoderViT tensors that feature extraction does not use.
DECODER_PREFIXES = ("decoder", "mask_token")

log = logging.getLogger(__name__)


def layer_table(settings: dict, image_size: int) -> dict:
    """{'block<i>': (embed_dim, image_size // patch_size)} for i in 0..depth-1, in forward order;
    ValueError when arch.patch_size does not divide image_size."""
    arch = settings["arch"]
    if image_size % arch["patch_size"]:
        raise ValueError(f"MAE arch.patch_size {arch['patch_size']} does not divide the image size {image_size}; "
                         "choose a patch size that does (the paper: 8 at 256)")
    grid = image_size // arch["patch_size"]
    return {f"block{i}": (arch["embed_dim"], grid) for i in range(arch["depth"])}


def default_layers(settings: dict, image_size: int) -> list:
    """The last half of the blocks, block{depth // 2} .. block{depth - 1} (the paper: the last 12
    of 24; an odd depth gives the larger half)."""
    return list(layer_table(settings, image_size))[settings["arch"]["depth"] // 2:]


def _encoder(arch: dict, image_size: int):
    """timm's VisionTransformer with MaskedAutoencoderViT's encoder tensors (cls token, pos_embed
    (1, 1 + L, D), patch_embed, blocks, norm) and no head; weights from timm's initialisation."""
    from functools import partial

    import torch
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=image_size, patch_size=arch["patch_size"], embed_dim=arch["embed_dim"], depth=arch["depth"],
        num_heads=arch["num_heads"], mlp_ratio=arch["mlp_ratio"], qkv_bias=True, class_token=True, global_pool="",
        num_classes=0, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
    )


def _mae_initialised_encoder(arch: dict, image_size: int):
    """(vit, masked): `_encoder` with MAE's initialisation (xavier-uniform linears and patch
    projection, cls token N(0, 0.02), fixed 2D sin-cos pos_embed) from torch's global generator,
    on the CPU, and lightly's masking wrapper around it (which draws that initialisation)."""
    from lightly.models.modules import MaskedVisionTransformerTIMM

    vit = _encoder(arch, image_size)
    return vit, MaskedVisionTransformerTIMM(vit=vit)


def _arch_hint(state: dict, arch: dict, image_size: int) -> str:
    """The arch settings (or the image size) that the shapes of a MaskedAutoencoderViT encoder
    state_dict contradict, as a hint for an error message."""
    proj, pos = state.get("patch_embed.proj.weight"), state.get("pos_embed")
    if proj is None or pos is None or proj.ndim != 4 or pos.ndim != 3:
        return "is it a MaskedAutoencoderViT checkpoint? It lacks the encoder's patch_embed.proj.weight or pos_embed"
    shown = {"embed_dim": proj.shape[0], "patch_size": proj.shape[-1],
             "depth": len({key.split(".")[1] for key in state if key.startswith("blocks.")})}
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        shown["mlp_ratio"] = fc1.shape[0] / proj.shape[0]
    problems = [f"arch.{name} (the checkpoint's shapes say {value}, the settings say {arch[name]})"
                for name, value in shown.items() if value != arch[name]]
    checkpoint_size = math.isqrt(pos.shape[1] - 1) * proj.shape[-1]
    if checkpoint_size != image_size:
        problems.append(f"the image size (its pos_embed is for {checkpoint_size}x{checkpoint_size} images, the "
                        f"dataset's are {image_size}x{image_size})")
    return "check " + "; ".join(problems) if problems else "check the arch settings against the checkpoint"


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """The encoder (timm VisionTransformer, fp32, eval mode) on `device`.

    checkpoint: a path to a MaskedAutoencoderViT checkpoint ({'model': state_dict}; the decoder
    tensors and mask_token are ignored) loaded strictly, or None: MAE's random initialisation
    from torch.manual_seed(seed), drawn on the CPU (the same weights on every device). A file
    that does not fit `arch` at this image size raises CheckpointError naming the file, the
    first mismatching tensor and the setting that probably differs.
    """
    import torch

    from ddpmseg.checkpoints import first_shape_mismatch, load_state_dict
    from ddpmseg.errors import CheckpointError

    arch = settings["arch"]
    layer_table(settings, image_size)  # checks the patch size
    if checkpoint is None:
        torch.manual_seed(seed)
        vit, _ = _mae_initialised_encoder(arch, image_size)
        return vit.to(device).eval()
    state = {key: value for key, value in load_state_dict(checkpoint, setting="methods.<method>.checkpoint").items()
             if not key.startswith(DECODER_PREFIXES)}
    with torch.device("meta"):
        vit = _encoder(arch, image_size)
    mismatch = first_shape_mismatch(vit.state_dict(), state)
    if mismatch:
        name, in_checkpoint, built = mismatch
        raise CheckpointError(f"{checkpoint}: tensor {name!r} is {in_checkpoint or 'absent'} in the checkpoint, the "
                              f"settings build {built or 'no such tensor'}; {_arch_hint(state, arch, image_size)}.")
    vit = vit.to_empty(device=device)  # every tensor is then loaded from the checkpoint
    vit.load_state_dict(state)
    return vit.eval()


def activations(model, x, layers, timesteps=None, noise=None) -> dict:
    """{('block<i>', None): (B, D, g, g) float32}, in forward order: the output of encoder
    block i (before the final norm) for x (B, 3, S, S) ImageNet-normalised float32, the cls
    token dropped and the patch tokens in image order reshaped row-major to the g x g patch grid
    (g = S / patch_size). The blocks after the deepest requested one are not run. ValueError
    for an unknown layer."""
    import torch

    index = {f"block{i}": i for i in range(len(model.blocks))}
    unknown = [layer for layer in layers if layer not in index]
    if unknown:
        raise ValueError(f"unknown MAE layers {unknown}; this encoder has block0 .. block{len(index) - 1}")
    wanted = {index[layer]: layer for layer in layers}
    grid_h, grid_w = model.patch_embed.grid_size
    maps = {}
    with torch.no_grad():
        tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))  # (B, 1 + L, D): cls, then patches
        for i, block in enumerate(model.blocks[: max(wanted) + 1]):
            tokens = block(tokens)
            if i in wanted:
                patches = tokens[:, model.num_prefix_tokens:]  # (B, L, D), row-major over the grid
                maps[wanted[i], None] = patches.transpose(1, 2).reshape(len(x), -1, grid_h, grid_w).float()
    return maps


# lightly's decoder's tensor names -> MaskedAutoencoderViT's (the official checkpoint layout)
OFFICIAL_DECODER_NAMES = {"body.mask_token": "mask_token", "body.pos_embed": "decoder_pos_embed",
                          "body.blocks.": "decoder_blocks.", "body.norm.": "decoder_norm."}


def _decoder(arch: dict, train: dict, vit):
    """MAE's decoder as an nn.ModuleDict: `decoder_embed` (Linear, encoder width -> decoder width),
    `body` (lightly's MaskedVisionTransformerDecoderTIMM: mask token, fixed sin-cos position
    embedding, train.decoder_depth blocks, norm) and `decoder_pred` (Linear to a patch's pixels).
    The two Linears start from xavier-uniform weights and zero biases, as in MAE; their
    weights, then the body's, are drawn from torch's global generator."""
    import torch.nn as nn
    from lightly.models.modules import MaskedVisionTransformerDecoderTIMM

    width = train["decoder_embed_dim"]
    decoder = nn.ModuleDict({
        "decoder_embed": nn.Linear(arch["embed_dim"], width),
        "decoder_pred": nn.Linear(width, arch["patch_size"] ** 2 * 3),
    })
    for linear in decoder.values():
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
    decoder["body"] = MaskedVisionTransformerDecoderTIMM(
        num_patches=vit.patch_embed.num_patches, embed_dim=width, depth=train["decoder_depth"],
        num_heads=train["decoder_num_heads"], mlp_ratio=arch["mlp_ratio"])
    return decoder


def _official_decoder_state(decoder) -> dict:
    """The decoder's tensors under MaskedAutoencoderViT's names (mask_token, decoder_embed.*,
    decoder_pos_embed, decoder_blocks.*, decoder_norm.*, decoder_pred.*)."""
    state = {}
    for key, tensor in decoder.state_dict().items():
        for ours, official in OFFICIAL_DECODER_NAMES.items():
            if key.startswith(ours):
                key = official + key[len(ours):]
        state[key] = tensor
    return state


def _masked_patch_loss(encoder, decoder, x, mask_ratio: float, norm_pix_loss: bool, patch_size: int):
    """MAE's loss of one batch x (B, 3, S, S): the mean squared error, per pixel and channel, of
    the decoder's prediction of the masked patches (mask drawn from torch's generator), against
    the input's patches, each normalised by its own mean and variance (+1e-6) with norm_pix_loss."""
    import torch.nn.functional as F
    from lightly.models import utils

    batch, length = len(x), encoder.sequence_length  # length counts the cls token, which is never masked
    idx_keep, idx_mask = utils.random_token_mask((batch, length), mask_ratio=mask_ratio, device=x.device)
    encoded = encoder.encode(x, idx_keep=idx_keep)  # (B, kept, D), after the final norm
    body = decoder["body"]
    tokens = utils.repeat_token(body.mask_token, (batch, length))
    tokens = utils.set_at_index(tokens, idx_keep, decoder["decoder_embed"](encoded))
    decoded = body.decode(body.add_pos_embed(tokens))
    prediction = decoder["decoder_pred"](utils.get_at_index(decoded, idx_mask))
    target = utils.get_at_index(utils.patchify(x, patch_size), idx_mask - 1)  # patches have no cls token
    if norm_pix_loss:
        target = utils.normalize_mean_var(target, dim=-1, eps=1e-6)
    return F.mse_loss(prediction, target)


def pretrain(settings: dict, images, device: str):
    """MAE pretraining of the `arch` encoder with a `train` decoder on unlabeled images.

    images: (N, S, S, 3) uint8. Each step draws `batch_size` images (with replacement, from a
    numpy generator seeded with train.seed; torch seeded with it too, for the initialisation and
    the masks), flips them (random_flip), ImageNet-normalises them as the features' input and
    minimises `_masked_patch_loss` with AdamW (constant lr, betas (0.9, 0.95), weight decay on
    weight matrices only). `max_steps` steps define the training; `max_minutes` (None: no limit)
    stops it early, which the outcome shows. The same settings and images give the same weights
    on the same device and thread count.

    Returns (checkpoint, loss_rows, outcome): checkpoint {'model': state_dict} in the official
    MaskedAutoencoderViT layout (encoder and decoder, fp32, CPU), which `build` loads; loss_rows
    dicts {step, seconds, loss} every `log_every` steps (loss: the mean over those steps);
    outcome {steps, max_steps, max_minutes, stopped_by: "max_steps" | "max_minutes", seconds,
    seed, torch_threads}. RuntimeError when the loss is not finite.
    """
    import numpy as np
    import torch

    from ddpmseg.model_input import model_input
    from ddpmseg.training import TrainingRecord

    arch, train = settings["arch"], settings["train"]
    size = images.shape[1]
    if images.shape[1:] != (size, size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, MAE pretraining wants square RGB (S, S, 3)")
    layer_table(settings, size)  # checks the patch size
    seed, max_steps, max_minutes = train["seed"], train["max_steps"], train["max_minutes"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vit, encoder = _mae_initialised_encoder(arch, size)
    decoder = _decoder(arch, train, vit)
    encoder.to(device).train()  # the ViT with lightly's masking
    decoder.to(device).train()
    params = [p for module in (vit, decoder) for p in module.parameters() if p.requires_grad]  # not the sin-cos
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": train["weight_decay"]},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
        lr=train["lr"], betas=(0.9, 0.95),
    )

    record = TrainingRecord("MAE pretraining", "train.lr", max_steps, max_minutes, train["log_every"], seed, log)
    for step in range(1, max_steps + 1):
        batch = images[rng.integers(0, len(images), train["batch_size"])]
        if train["random_flip"]:
            flip = rng.random(len(batch)) < 0.5
            batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        x = model_input(batch, NORMALISATION).to(device)
        loss = _masked_patch_loss(encoder, decoder, x, train["mask_ratio"], train["norm_pix_loss"],
                                  arch["patch_size"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if record.step(step, loss.item()):
            break
    state = {**vit.state_dict(), **_official_decoder_state(decoder)}
    checkpoint = {"model": {key: value.detach().float().cpu() for key, value in state.items()}}
    return checkpoint, record.rows, record.outcome()
