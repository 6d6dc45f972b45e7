"""Benchmark: feature extraction seconds per image of the ADM against timm's ViT-S/14 (DINOv2 with
registers) and ConvNeXt-T, random weights, side by side in one run, through the workflow's own
extraction (`features.extract_features`: resize and normalise, forward with early exit, float16
stores at native resolution).

    python benchmarks/extraction_speed.py                   # 8 images of the embedded default, ~2 min on 2 cores
    python benchmarks/extraction_speed.py --images 16 --threads 8

The ADM is the embedded default's (64x64, its blocks and timesteps: one forward per timestep),
as `unet_untrained` builds it. The timm models are fed their pretrained configs' input size
(ViT-S/14: 518, so 37x37 tokens; ConvNeXt-T: 224) at their default layers (the last 4), and the
ViT also at 224 (`input_size: 224`, 16x16 tokens), the cheap choice for small images. Each figure
is the best of `--repeats` alternating runs, so all models see the same machine load; printed
with the ratio to the ADM's, and written to `<work>/extraction_speed.json`.
"""

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from snakemake.utils import update_config, validate

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from ddpmseg.features import build_method_model, extract_features  # noqa: E402
from ddpmseg.plan import Plan  # noqa: E402
from ddpmseg.synthetic import render_sample  # noqa: E402

METHODS = {
    "unet_untrained": None,
    "vit_s14_518": {"source": "timm", "model": "vit_small_patch14_reg4_dinov2.lvd142m", "pretrained": False},
    "vit_s14_224": {"source": "timm", "model": "vit_small_patch14_reg4_dinov2.lvd142m", "pretrained": False,
                    "input_size": 224},
    "convnext_t_224": {"source": "timm", "model": "convnext_tiny.fb_in22k", "pretrained": False},
}


def plans() -> tuple:
    """(dataset settings, {method: plan}) of the embedded default with the benchmark's methods."""
    config = yaml.safe_load((REPOSITORY / "config.yaml").read_text())
    update_config(config, copy.deepcopy({"methods": {k: v for k, v in METHODS.items() if v is not None}}))
    config["methods"] = {k: config["methods"].get(k, {}) for k in METHODS}
    validate(config, str(REPOSITORY / "schemas" / "config.schema.yaml"), set_default=True)
    plan = Plan(config)
    return plan.settings("creatures7"), {key: plan.plans["creatures7"][key] for key in METHODS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="where the stores and the JSON go (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="extraction_speed_"))
    settings, method_plans = plans()
    size = settings["image_size"]
    rng = np.random.default_rng(0)
    images = np.stack([render_sample(rng, size)[0] for _ in range(args.images)])
    ids = [f"image{i}" for i in range(args.images)]
    runs, described = {}, {}
    for key, plan in method_plans.items():
        model, table, _ = build_method_model(plan, size, None, "cpu", 0)
        layers = plan.layers
        timesteps = plan.timesteps
        described[key] = {"layers": layers, "timesteps": timesteps, "input_size": plan.settings.get("input_size", size),
                          "maps": {layer: list(table[layer]) for layer in layers}}
        runs[key] = (lambda key=key, model=model, layers=layers, timesteps=timesteps, table=table:
                     extract_features(method_plans[key].source, model, images, ids, layers, timesteps, table,
                                      work / key, {}, batch_images=1))
    best = {key: float("inf") for key in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            best[key] = min(best[key], time.perf_counter() - start)
    result = {key: {**described[key], "seconds_per_image": best[key] / args.images,
                    "ratio_to_adm": best[key] / best["unet_untrained"]} for key in runs}
    result["_run"] = {"images": args.images, "repeats": args.repeats, "threads": args.threads, "image_size": size,
                      "torch": torch.__version__}
    (work / "extraction_speed.json").write_text(json.dumps(result, indent=1))
    print(f"{'model':<16} {'input':>5} {'layers':<40} {'s/image':>8} {'x ADM':>6}")
    for key in runs:
        r = result[key]
        cells = f"{len(r['layers'])} layers" + (f" x {len(r['timesteps'])} t" if r["timesteps"] else "")
        print(f"{key:<16} {r['input_size']:>5} {cells:<40} {r['seconds_per_image']:>8.3f} {r['ratio_to_adm']:>6.2f}")
    print(f"({args.images} images, best of {args.repeats}, {args.threads} torch threads; {work / 'extraction_speed.json'})")


if __name__ == "__main__":
    main()
