"""Stable Diffusion features: decoder activations of a latent diffusion `UNet2DConditionModel`
(diffusers), as DIFT, Diffusion Hyperfeatures and Generic Diffusion Feature read them.

The image scaled to [-1, 1] is encoded by the pipeline's `AutoencoderKL` (the mean of its latent
distribution, times the VAE's scaling_factor: deterministic), the latent is noised with the
scheduler's `add_noise(z0, noise, t)` and the UNet is run at t on the embedding of `prompt`
(CLIP text encoder, padded to the tokenizer's length; default the empty prompt). Layers are
named as in `diffusers_unet`, `up<i>`, `up<i>_res<j>`, `up<i>_attn<j>`, at their native latent
resolution: a 512x512 image gives 64x64 latents with SD's 8x VAE, and SD 1.5's up1 is
1280 channels at 32x32. `noise_draws` K > 1 averages each map over K noise draws (DIFT's
ensemble): the noise tensor of a forward batch then stacks K latent draws along its channels
(`noise_shape`), so Table 5's noise variants apply to every draw. The built-in method `dift`
is DIFT's choice for SD 2.1 (up block 1's output, t = 261, 8 draws, the empty prompt).

The checkpoint is a local diffusers pipeline folder (unet/, vae/, text_encoder/, tokenizer/,
scheduler/; from_pretrained, local files only; nothing is downloaded). `weights: random`
re-initialises the UNet only (the untrained control; the VAE's latent space and the text
encoder stay the trained ones).
"""

import json
from pathlib import Path

from ddpmseg.backbones import diffusers_unet
from ddpmseg.backbones.diffusers_unet import decoder_activations, decoder_table
from ddpmseg.errors import CheckpointError
from ddpmseg.backbones.defaults import (  # noqa: F401  (the contract's usual answers)
    DIFFUSION_STAGE, FIGURE_AXES, HAS_MODEL_SEEDS, complete_settings, identity_settings, model_origin, model_parts,
    model_settings, sweep_layers,
)

NAME = "Stable Diffusion"
TAKES_TIMESTEPS = True
NORMALISATION = "[-1, 1]"
BUILT_FROM = "a local diffusers Stable Diffusion pipeline folder (unet, vae, text_encoder, tokenizer, scheduler)"
PRETRAINED_BY_WORKFLOW = False
RUNS_A_MODEL = True  # its extraction jobs ask for a GPU
EXPORTABLE = False  # its pipeline (VAE, CLIP text encoder) is not written for export, and would be GBs

UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D")
FOLDER_PARTS = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "text_encoder": None, "tokenizer": None,
                "scheduler": None}

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "checkpoint": {
            "description": "A local diffusers Stable Diffusion pipeline folder with unet/, vae/, text_encoder/, "
                           "tokenizer/ and scheduler/ (e.g. stable-diffusion-v1-5 or stable-diffusion-2-1 saved "
                           "with save_pretrained). Required: the workflow does not train one.",
            "type": ["string", "null"],
            "default": None,
        },
        "weights": {
            "description": "trained = the folder's; random = the UNet re-initialised from the seed (diffusers' "
                           "defaults), the VAE and the text encoder kept (the untrained control).",
            "enum": ["trained", "random"],
            "default": "trained",
        },
        "prompt": {
            "description": "The text the UNet is conditioned on, e.g. 'a photo of a bedroom' (DIFT: the empty "
                           "prompt).",
            "type": "string",
            "default": "",
        },
        "layers": {
            "description": "Decoder layers up<i>, up<i>_res<j>, up<i>_attn<j> (up0 = deepest) at the latent's "
                           "resolution. null = the outputs of the up blocks between the deepest and the last (SD: up1 "
                           "and up2); 'auto' (with timesteps 'auto') = the best cells of the probe sweep.",
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                      {"const": "auto"}],
            "default": None,
        },
        "timesteps": diffusers_unet.SETTINGS["properties"]["timesteps"],
        "noise_draws": {
            "description": "Noise draws each map is averaged over (DIFT's ensemble_size: 8); 1 = the paper's one "
                           "shared noise.",
            "type": "integer",
            "minimum": 1,
            "default": 1,
        },
    },
}


def _folder(checkpoint) -> Path:
    """The pipeline folder, checked for its parts and the classes of unet/ and vae/."""
    if not checkpoint:
        raise CheckpointError("stable_diffusion needs `checkpoint`: a local Stable Diffusion pipeline folder (unet/, "
                              "vae/, text_encoder/, tokenizer/, scheduler/); the workflow does not train one")
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: Stable Diffusion folder not found; point methods.<method>.checkpoint at a "
                              "local diffusers pipeline folder (nothing is downloaded at run time)")
    missing = [part for part in FOLDER_PARTS if not (folder / part).is_dir()]
    if missing:
        raise CheckpointError(f"{folder}: lacks {', '.join(p + '/' for p in missing)}; a Stable Diffusion pipeline "
                              "folder holds unet/, vae/, text_encoder/, tokenizer/ and scheduler/ (save_pretrained)")
    for part, expected in FOLDER_PARTS.items():
        if expected and _config(folder, part).get("_class_name") != expected:
            raise CheckpointError(f"{folder / part}: holds a {_config(folder, part).get('_class_name')!r}, not a "
                                  f"{expected}; is {folder} a Stable Diffusion pipeline folder?")
    return folder


def _config(folder: Path, part: str) -> dict:
    path = folder / part / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder / part}: no config.json; save the pipeline with save_pretrained()")
    with open(path) as f:
        return json.load(f)


def _scheduler_config(folder: Path) -> dict:
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no scheduler_config.json; save the pipeline with save_pretrained()")
    with open(path) as f:
        return json.load(f)


def schedule_length(settings: dict) -> int:
    """The folder's scheduler num_train_timesteps (diffusers' default 1000)."""
    return int(_scheduler_config(_folder(settings["checkpoint"])).get("num_train_timesteps", 1000))


def latent_size(settings: dict, image_size: int) -> int:
    """The latent's side for image_size x image_size images: image_size / 2^(VAE levels - 1)."""
    factor = 2 ** (len(_config(_folder(settings["checkpoint"]), "vae")["block_out_channels"]) - 1)
    if image_size % factor:
        raise ValueError(f"image size {image_size} is not divisible by the VAE's factor {factor}")
    return image_size // factor


def layer_table(settings: dict, image_size: int) -> dict:
    """{layer: (channels, latent resolution)} of every decoder layer in forward order, from the
    folder's unet/ and vae/ configs (`diffusers_unet.decoder_table` at the latent's size)."""
    folder = _folder(settings["checkpoint"])
    return decoder_table(_config(folder, "unet"), latent_size(settings, image_size), UP_BLOCKS,
                         ("CrossAttnUpBlock2D",), folder / "unet")


def default_layers(settings: dict, image_size: int) -> list:
    """The outputs of up blocks 1 .. n - 2 (SD 1.5 and 2.1: up1 and up2)."""
    n = len(_config(_folder(settings["checkpoint"]), "unet")["up_block_types"])
    return [f"up{i}" for i in range(1, n - 1)] or ["up0"]


def pipeline_parts(unet, vae, scheduler, prompt_embedding, noise_draws: int):
    """The pipeline's parts on one device as one module (`defaults.model_parts`): .unet and .vae
    (eval mode), .scheduler, .prompt_embedding (1, L, D), .noise_draws K, and the VAE's
    .scaling_factor and .latent_channels."""
    return model_parts(unet=unet, vae=vae, scheduler=scheduler, prompt_embedding=prompt_embedding,
                       noise_draws=noise_draws, scaling_factor=vae.config.scaling_factor,
                       latent_channels=vae.config.latent_channels)


def prompt_embedding(text_encoder, tokenizer, prompt: str, device: str):
    """(1, L, D) float32: the text encoder's last hidden state of `prompt` padded to the
    tokenizer's model_max_length, as the diffusers pipelines condition the UNet."""
    import torch

    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    with torch.no_grad():
        return text_encoder(ids)[0].float()


def build(settings: dict, image_size: int, checkpoint, device: str, seed: int):
    """`pipeline_parts` of the pipeline folder's UNet and VAE (fp32, eval mode, local files only),
    a DDPMScheduler of its scheduler config and the prompt's embedding by its text encoder and
    tokenizer; weights 'random' re-initialises the UNet from torch.manual_seed(seed).
    CheckpointError for a folder that is missing or not SD's."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = _folder(checkpoint)
    layer_table({**settings, "checkpoint": checkpoint}, image_size)  # checks the size and block types
    if settings["weights"] == "random":
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(_config(folder, "unet"))
    else:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    scheduler = DDPMScheduler.from_config(_scheduler_config(folder))
    text_encoder = text_encoder.float().to(device).eval()
    embedding = prompt_embedding(text_encoder, tokenizer, settings["prompt"], device)
    return pipeline_parts(unet.float().to(device).eval(), vae.float().to(device).eval(), scheduler, embedding,
                          settings["noise_draws"])


def noise_shape(model, image_size: int) -> tuple:
    """(noise_draws * latent channels, h, h): one forward batch's noise, K latent draws stacked."""
    factor = 2 ** (len(model.vae.config.block_out_channels) - 1)
    return model.noise_draws * model.latent_channels, image_size // factor, image_size // factor


def encode(model, x):
    """(B, C, h, w) float32: the mean of the VAE's latent distribution of x (B, 3, S, S) in [-1, 1],
    times its scaling_factor."""
    import torch

    with torch.no_grad():
        return model.vae.encode(x).latent_dist.mean * model.scaling_factor


def activations(model, x, layers, timesteps, noise) -> dict:
    """{(layer, t): (B, C, h, w) float32} of x (B, 3, S, S) in [-1, 1]: its latent noised to every
    t with each of the K draws of `noise` ((1, K * C, h, w) shared, or one per (image, timestep),
    image-major and timestep-minor), the UNet run on B * len(timesteps) latents per draw with the
    prompt's embedding, each map the mean over the draws."""
    import torch

    n, limit = len(x), model.scheduler.config.num_train_timesteps
    if max(timesteps) >= limit:
        raise ValueError(f"timestep {max(timesteps)} is beyond the scheduler's {limit} training steps")
    latents = encode(model, x).repeat_interleave(len(timesteps), dim=0)
    t_rep = torch.tensor(timesteps, dtype=torch.long, device=x.device).repeat(n)
    condition = model.prompt_embedding.expand(len(latents), -1, -1)
    sums = {}
    for draw in noise.chunk(model.noise_draws, dim=1):
        z_t = model.scheduler.add_noise(latents, draw.expand_as(latents), t_rep)
        for layer, act in decoder_activations(model.unet, layers, z_t, t_rep, encoder_hidden_states=condition).items():
            sums[layer] = act if layer not in sums else sums[layer] + act
    maps = {}
    for layer, total in sums.items():
        mean = (total / model.noise_draws).reshape(n, len(timesteps), *total.shape[1:])
        for k, t in enumerate(timesteps):
            maps[layer, t] = mean[:, k]
    return maps
