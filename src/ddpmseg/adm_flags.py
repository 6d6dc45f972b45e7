"""guided-diffusion's ADM model flags: the one place that knows what each flag means and its
default, which flags build a UNet, and the shapes of that UNet (each decoder block's channels
and resolution).

A model's flags are a flat dict of the keys of guided-diffusion's
`script_util.model_and_diffusion_defaults()` (`FLAGS`, in its order, with its defaults; a test
keeps them equal). Nothing here imports torch: the Snakefile checks a dataset's flags
(`ddpmseg.config`) and plans the ADM's layer table (`ddpmseg.backbones.adm`) before any job runs;
`ddpmseg.diffusion` builds and loads the UNet from them.
"""

import difflib

# name -> (guided-diffusion's default, meaning); the order of model_and_diffusion_defaults()
FLAGS = {
    "image_size": (64, "side of the square images, px"),
    "num_channels": (128, "channels of the first level; level l has num_channels x channel_mult[l]"),
    "num_res_blocks": (2, "residual blocks of each encoder level; each decoder level has one more"),
    "num_heads": (4, "attention heads (where num_head_channels is -1)"),
    "num_heads_upsample": (-1, "attention heads of the decoder (-1: num_heads)"),
    "num_head_channels": (-1, "channels of each attention head (-1: num_heads heads)"),
    "attention_resolutions": ("16,8", "the resolutions (px, comma-separated) whose levels have attention"),
    "channel_mult": ("", "each level's channel multiplier, comma-separated, fractions allowed; '' = the "
                         "image size's DEFAULT_CHANNEL_MULT"),
    "dropout": (0.0, "dropout in the residual blocks (training only)"),
    "class_cond": (False, "a class embedding: a class-conditional model"),
    "use_checkpoint": (False, "gradient checkpointing (training memory; the same numbers)"),
    "use_scale_shift_norm": (True, "the timestep embedding scales and shifts each residual block's norm (else "
                                   "it is added)"),
    "resblock_updown": (False, "residual blocks resample between levels (else a conv or an interpolation)"),
    "use_fp16": (False, "fp16 weights on a GPU (on a CPU the model runs in fp32)"),
    "use_new_attention_order": (False, "attention splits q, k and v before the heads"),
    "learn_sigma": (False, "the UNet also predicts the variance: 6 output channels, else 3"),
    "diffusion_steps": (1000, "steps T of the noise schedule: t in 0 .. T - 1"),
    "noise_schedule": ("linear", "the betas: linear or cosine"),
    "timestep_respacing": ("", "the steps sampling takes ('' = all T)"),
    "use_kl": (False, "the training loss is the variational bound (else the noise's MSE)"),
    "predict_xstart": (False, "the UNet predicts x0 (else the noise)"),
    "rescale_timesteps": (False, "t is scaled to 0 .. 1000 before the UNet"),
    "rescale_learned_sigmas": (False, "the variance's loss term is rescaled (with learn_sigma)"),
}
DEFAULTS = {name: default for name, (default, _) in FLAGS.items()}
NAMES_HINT = f"guided-diffusion's flags are {', '.join(sorted(FLAGS))}"  # what follows unknown flags

# guided-diffusion's channel_mult for each image size when the flag is empty (its
# create_model), plus 32x32 (improved-diffusion's CIFAR-10 model).
DEFAULT_CHANNEL_MULT = {
    32: (1, 2, 2, 2),
    64: (1, 2, 3, 4),
    128: (1, 1, 2, 3, 4),
    256: (1, 1, 2, 2, 4, 4),
    512: (0.5, 1, 1, 2, 2, 4, 4),
}
SMALLEST_SIZE, LARGEST_SIZE = 32, 512  # the image sizes `diffusion.build_unet` builds


def unknown_flags(flags: dict) -> list:
    """One phrase per key of `flags` that is no flag, sorted: "unknown model flag 'num_chanels'
    (did you mean 'num_channels'?)"; `NAMES_HINT` lists the flags."""
    phrases = []
    for key in sorted(set(flags) - set(FLAGS)):
        close = difflib.get_close_matches(key, sorted(FLAGS), n=1)
        phrases.append(f"unknown model flag {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return phrases


def full_flags(flags: dict) -> dict:
    """`DEFAULTS` overridden by `flags` (DEFAULTS' keys in their order); ValueError naming any
    unknown key."""
    unknown = unknown_flags(flags)
    if unknown:
        raise ValueError(f"{'; '.join(unknown)}; {NAMES_HINT}")
    return {**DEFAULTS, **flags}


def diffusion_steps(flags: dict) -> int:
    """The steps T of the noise schedule (flag diffusion_steps): t in 0 .. T - 1."""
    return int(flags.get("diffusion_steps", DEFAULTS["diffusion_steps"]))


def parse_channel_mult(channel_mult: str, image_size: int) -> tuple:
    """The per-level channel multipliers: "1,2,3" -> (1, 2, 3) ("0.5" stays 0.5); an empty
    string gives `DEFAULT_CHANNEL_MULT[image_size]`."""
    if str(channel_mult).strip() == "":
        if image_size not in DEFAULT_CHANNEL_MULT:
            raise ValueError(
                f"image_size {image_size} has no default channel_mult (defaults exist for "
                f"{sorted(DEFAULT_CHANNEL_MULT)}); set the flag channel_mult, e.g. \"1,2,3\""
            )
        return DEFAULT_CHANNEL_MULT[image_size]
    mult = tuple(float(m) for m in str(channel_mult).split(","))
    return tuple(int(m) if m.is_integer() else m for m in mult)


def format_channel_mult(mult) -> str:
    """The flag of per-level multipliers: (1, 2.0, 0.5) -> "1,2,0.5"."""
    return ",".join(str(int(m)) if float(m).is_integer() else str(m) for m in mult)


def buildable_channel_mult(flags: dict) -> tuple:
    """The per-level channel multipliers of full `flags`, where a UNet can be built of them:
    ValueError for an image size outside 32..512 or more levels than halvings down to 2x2."""
    size = int(flags["image_size"])
    if not SMALLEST_SIZE <= size <= LARGEST_SIZE:
        raise ValueError(f"image_size {size} is outside the supported {SMALLEST_SIZE}..{LARGEST_SIZE}")
    mult = parse_channel_mult(flags["channel_mult"], size)
    if size // 2 ** (len(mult) - 1) < 2:
        raise ValueError(f"channel_mult {flags['channel_mult']!r} has {len(mult)} levels: too many for image_size "
                         f"{size}")
    return mult


def attention_downsampling(flags: dict) -> tuple:
    """UNetModel's attention_resolutions argument of full `flags`: the downsampling factor
    (image_size // r) of each resolution r of the flag ("32,16,8" at 256 -> (8, 16, 32))."""
    size, attention = int(flags["image_size"]), str(flags["attention_resolutions"]).strip()
    return tuple(size // int(r) for r in attention.split(",")) if attention else ()


def _attention_levels(attention_resolutions: str, image_size: int, n_levels: int) -> set:
    """Indices of the UNet levels that get attention (resolutions that match no level do nothing)."""
    wanted = {image_size // int(r) for r in str(attention_resolutions).split(",") if r.strip()}
    return {level for level in range(n_levels) if 2**level in wanted}


def same_flag(name: str, given, inferred: dict, image_size: int) -> bool:
    """Whether a given value of flag `name` builds the same tensors as the one of `inferred`
    (the flags a checkpoint's shapes show, `diffusion.infer_flags`): channel multipliers compared
    as numbers, attention resolutions by the levels they give."""
    if name == "channel_mult":
        return parse_channel_mult(given, image_size) == parse_channel_mult(inferred[name], image_size)
    if name == "attention_resolutions":
        n_levels = len(parse_channel_mult(inferred["channel_mult"], image_size))
        return _attention_levels(given, image_size, n_levels) == _attention_levels(inferred[name], image_size, n_levels)
    return given == inferred[name]


def decoder_blocks(flags: dict) -> list:
    """[(channels, resolution px)] of each decoder block (`UNetModel.output_blocks`), deepest
    first, of `flags` over `DEFAULTS`: level l has num_res_blocks + 1 blocks of num_channels x
    channel_mult[l] channels; the last block of each level but the first upsamples by 2, from
    image_size / 2 ** (levels - 1) at the deepest. ValueError for an image size without a
    default channel_mult where the flag is empty."""
    flags = {**DEFAULTS, **flags}
    size = int(flags["image_size"])
    mult = parse_channel_mult(flags["channel_mult"], size)
    channels, per_level = int(flags["num_channels"]), int(flags["num_res_blocks"]) + 1
    resolution = size // 2 ** (len(mult) - 1)
    blocks = []
    for level in reversed(range(len(mult))):
        for i in range(per_level):
            if level and i == per_level - 1:
                resolution *= 2
            blocks.append((int(channels * mult[level]), resolution))
    return blocks


def blocks_known(flags: dict, checkpoint) -> bool:
    """Whether `decoder_blocks` of the flags is the model's before its checkpoint is read: no
    checkpoint (the flags build it), or num_res_blocks given (channel_mult, when absent, is
    taken to be the image size's default)."""
    return not checkpoint or "num_res_blocks" in flags
