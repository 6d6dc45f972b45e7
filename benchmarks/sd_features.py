"""Benchmark: Stable Diffusion feature extraction at 512x512 on this machine, with SD 1.5's full-size
architecture built from its config (random weights: time and memory do not depend on them).

    python benchmarks/sd_features.py            # about 8 min on 2 CPU cores
    python benchmarks/sd_features.py --small    # a tiny pipeline at 64x64, to check the script

The parts are SD 1.5's: UNet2DConditionModel (860M parameters: diffusers' default config),
AutoencoderKL (4 levels, 8x), the CLIP ViT-L/14 text encoder (12 layers, 768 wide) embedding the
empty prompt once. Each recipe runs `stable_diffusion.activations` on one warm-up image, then
`--images` images one at a time, in its own child process so that its peak RSS (VmHWM,
`child_process.peak_rss_mb`) is its own:

- `dift`: DIFT's choice, up1 at t = 261 averaged over 8 noise draws (1280 x 32 x 32 a pixel map);
- `default`: the source's default layers (up1, up2) at three timesteps (50, 150, 250), one draw;
- `full forward`: the same three timesteps with the UNet run to its output (up3), for comparison.

Printed: seconds per image (VAE encoding and UNet separately), the features' floats per image,
peak RSS; also written to `<work>/sd_features.json`.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from child_process import peak_rss_mb, run_child  # noqa: E402

RECIPES = {
    "dift": {"layers": ["up1"], "timesteps": [261], "noise_draws": 8},
    "default": {"layers": ["up1", "up2"], "timesteps": [50, 150, 250], "noise_draws": 1},
    "full forward": {"layers": ["up3"], "timesteps": [50, 150, 250], "noise_draws": 1},
}


def parts(small: bool):
    """(unet, vae, text_encoder) of SD 1.5 (or tiny ones), random weights, fp32, eval mode."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    if small:
        unet = UNet2DConditionModel(block_out_channels=(8, 16, 16, 16), layers_per_block=1, cross_attention_dim=16,
                                    attention_head_dim=2, norm_num_groups=4)
        vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4)
        text = CLIPTextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    else:
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # otherwise diffusers' defaults: SD 1.x
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            latent_channels=4, sample_size=512, scaling_factor=0.18215)
        text = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, max_position_embeddings=77, projection_dim=768)
    text_encoder = CLIPTextModel(text)
    return unet.eval(), vae.eval(), text_encoder.eval()


def child(recipe: str, small: bool, images: int, threads: int) -> dict:
    """Times one recipe in this process; returns its figures."""
    import torch
    from diffusers import DDPMScheduler

    from ddpmseg.backbones import stable_diffusion as sd

    torch.set_num_threads(threads)
    size = 64 if small else 512
    settings = RECIPES[recipe]
    unet, vae, text_encoder = parts(small)
    ids = torch.tensor([[49406] + [49407] * 76]) if not small else torch.tensor([[0] * 77])
    with torch.no_grad():
        embedding = text_encoder(ids)[0].float()  # the empty prompt, as CLIPTokenizer pads it
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    model = sd.pipeline_parts(unet, vae, scheduler, embedding, settings["noise_draws"])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, *sd.noise_shape(model, size), generator=generator)
    x = torch.rand(images + 1, 3, size, size, generator=generator) * 2 - 1
    sd.activations(model, x[:1], settings["layers"], settings["timesteps"], noise)  # warm-up
    encode_seconds, total_seconds, floats = 0.0, 0.0, 0
    for i in range(1, images + 1):
        start = time.perf_counter()
        sd.encode(model, x[i : i + 1])
        encode_seconds += time.perf_counter() - start
        start = time.perf_counter()
        maps = sd.activations(model, x[i : i + 1], settings["layers"], settings["timesteps"], noise)
        total_seconds += time.perf_counter() - start
        floats = sum(m.numel() for m in maps.values())
    return {"recipe": recipe, "s_per_image": total_seconds / images, "vae_s_per_image": encode_seconds / images,
            "unet_s_per_image": (total_seconds - encode_seconds) / images, "feature_floats_per_image": floats,
            "peak_rss_gb": peak_rss_mb() / 1024,
            "unet_parameters_m": sum(p.numel() for p in unet.parameters()) / 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a tiny pipeline at 64x64 (checks the script)")
    parser.add_argument("--images", type=int, default=2, help="timed images per recipe")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--work", type=Path, default=None, help="folder for the JSON (default: a temporary one)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.small, args.images, args.threads)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="sd_features_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in RECIPES:
        rows.append(run_child(__file__, recipe, "--images", str(args.images), "--threads", str(args.threads),
                              *(["--small"] if args.small else [])))
    size = 64 if args.small else 512
    print(f"Stable Diffusion {'(tiny) ' if args.small else '1.5 '}features at {size}x{size}, UNet "
          f"{rows[0]['unet_parameters_m']:.1f}M parameters, {args.threads} threads, {args.images} images a recipe")
    print(f"{'recipe':<14}{'s/image':>9}{'VAE s':>8}{'UNet s':>8}{'floats/image':>14}{'peak RSS GB':>13}")
    for row in rows:
        print(f"{row['recipe']:<14}{row['s_per_image']:>9.2f}{row['vae_s_per_image']:>8.2f}{row['unet_s_per_image']:>8.2f}"
              f"{row['feature_floats_per_image']:>14,}{row['peak_rss_gb']:>13.2f}")
    (work / "sd_features.json").write_text(json.dumps(rows, indent=1))
    print(f"written to {work / 'sd_features.json'}")


if __name__ == "__main__":
    main()
