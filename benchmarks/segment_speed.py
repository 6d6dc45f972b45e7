"""Benchmark: segmenting images with a seed's ensemble (feature extraction + the MLPs) against the
DeepLab distilled from it (DatasetDDPM), at the embedded default's size and at the paper's.

    python benchmarks/segment_speed.py                  # both sizes, about 10 min on 2 cores
    python benchmarks/segment_speed.py --size default   # the default's 48x48 model only

Weights are random (timing and memory do not depend on them). Per size, both segmenters are
saved as bundles (ddpmseg.segmenter) and each is timed in its own subprocess, so that its peak
RSS (VmHWM, `child_process.peak_rss_mb`) is its own: `Segmenter.load(bundle).predict(images)` on one warm-up image, then
on `--images` images, one call each (the workflow's folder segmentation does the same). Sizes:

- default: config.yaml's 48x48 ADM (blocks 0-3 at t 50 and 150, 10 MLPs, 7 classes) against
  config/distill.yaml's DeepLab backbone (mobilenet_v3_large), both at 48x48;
- paper: the paper's ADM-256 (blocks 5, 6, 7, 8, 12 at t 50, 150, 250: 8448 features a pixel;
  10 MLPs with 256 hidden units, 34 classes as FFHQ-34) against deeplabv3_resnet101, at 256x256.

Printed: seconds per image, images per second, peak RSS, and DeepLab's speed-up; also written
to `<work>/segment_speed.json`.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from child_process import peak_rss_mb, run_child  # noqa: E402
from ddpmseg.deeplab import build_deeplab  # noqa: E402
from ddpmseg.diffusion import build_model_and_diffusion, randomize_weights, save_model  # noqa: E402
from ddpmseg.ensemble import BatchedMLPEnsemble  # noqa: E402
from ddpmseg.methods import plans  # noqa: E402
from ddpmseg.segmenter import Segmenter  # noqa: E402


def size_settings(name: str) -> dict:
    """flags, blocks, timesteps, classes and DeepLab backbone of one benchmark size, from the configs."""
    if name == "default":
        default = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["datasets"]["creatures7"]
        distill = yaml.safe_load((REPOSITORY / "config" / "distill.yaml").read_text())
        backbone = distill["datasets"]["creatures7"]["distill"]["deeplab"]["backbone"]
        return dict(flags=default["diffusion"]["flags"], blocks=default["features"]["blocks"],
                    timesteps=default["features"]["timesteps"], classes=7, backbone=backbone)
    paper = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())
    return dict(flags=paper["_paper"]["diffusion"]["flags"], blocks=paper["_paper"]["features"]["blocks"],
                timesteps=paper["_paper"]["features"]["timesteps"], classes=34, backbone="resnet101")


def write_bundles(name: str, work: Path, threads: int) -> dict:
    """Saves the size's ensemble and DeepLab bundles under work/; returns {segmenter: folder}."""
    settings = size_settings(name)
    flags, size = settings["flags"], settings["flags"]["image_size"]
    model, _ = build_model_and_diffusion(flags)
    randomize_weights(model, seed=0)
    checkpoint = work / f"{name}_adm.pt"
    save_model(model, flags, checkpoint, work / f"{name}_flags.json")
    dataset = {"image_size": size, "diffusion": {"flags": flags, "checkpoint": str(checkpoint), "seeds": [0]},
               "features": {"blocks": settings["blocks"], "timesteps": settings["timesteps"]}, "methods": {}}
    plan = plans({"methods": {"ddpm": {"source": "adm"}}, "datasets": {name: dataset}})[name]["ddpm"]
    cells = [(layer, t) for t in plan["timesteps"] for layer in plan["layers"]]
    features = sum(plan["table"][layer][0] for layer, _ in cells)
    ensemble_path = work / f"{name}_ensemble.pt"
    torch.save(BatchedMLPEnsemble(10, features, settings["classes"], seed=0).eval().state_dict(), ensemble_path)
    classes = [f"class{c}" for c in range(settings["classes"])]
    common = dict(classes=classes, ignore_label=255, image_size=size, non_square="error", resize="lanczos")
    ensemble = Segmenter.for_ensemble(
        ensemble_path, plan=plan, cells=cells, checkpoint=checkpoint, model_seed=0, noise_seed=0, noise_device="cpu",
        batch_images=1, threads={"extraction": threads, "prediction": threads}, vote="majority",
        provenance={"benchmark": name}, **common)
    deeplab = Segmenter.for_deeplab(build_deeplab(settings["backbone"], len(classes)).state_dict(),
                                    backbone=settings["backbone"], threads=threads, provenance={"benchmark": name}, **common)
    folders = {"ensemble": work / f"{name}_ensemble", f"deeplab ({settings['backbone']})": work / f"{name}_deeplab"}
    ensemble.save(folders["ensemble"])
    deeplab.save(folders[f"deeplab ({settings['backbone']})"])
    print(f"{name}: {size}x{size}, ensemble of 10 MLPs on {features} features a pixel ({len(cells)} cells), "
          f"DeepLab {settings['backbone']}", flush=True)
    return folders


def time_bundle(folder: str, n_images: int) -> dict:
    """(In the child process.) Seconds per image of predict() on n_images after one warm-up."""
    segmenter = Segmenter.load(folder)
    size = segmenter.image_size
    images = np.random.default_rng(0).integers(0, 256, (n_images + 1, size, size, 3), dtype=np.uint8)
    segmenter.predict(images[:1])
    start = time.perf_counter()
    segmenter.predict(images[1:])
    seconds = (time.perf_counter() - start) / n_images
    return {"seconds_per_image": seconds, "images_per_second": 1 / seconds,
            "peak_rss_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["default", "paper", "both"], default="both")
    parser.add_argument("--images", type=int, default=None, help="timed images (default: 8 default-size, 2 paper)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of extraction and prediction")
    parser.add_argument("--work", type=Path, default=None, help="folder for the bundles and results (default: a temporary one)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_bundle(args.child, args.images)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ddpmseg-segment-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in (["default", "paper"] if args.size == "both" else [args.size]):
        n_images = args.images or (8 if name == "default" else 2)
        for segmenter, folder in write_bundles(name, work, args.threads).items():
            timed = run_child(__file__, str(folder), "--images", str(n_images))
            results.append({"size": name, "segmenter": segmenter, "images": n_images, **timed})
            print(f"  {segmenter:28s} {results[-1]['seconds_per_image']:8.3f} s/image  "
                  f"{results[-1]['images_per_second']:8.2f} images/s  peak RSS {results[-1]['peak_rss_mb']:7.0f} MB", flush=True)
        ensemble, deeplab = results[-2], results[-1]
        print(f"  DeepLab is {ensemble['seconds_per_image'] / deeplab['seconds_per_image']:.1f}x faster, "
              f"with {deeplab['peak_rss_mb'] / ensemble['peak_rss_mb']:.2f}x the peak RSS", flush=True)
    (work / "segment_speed.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'segment_speed.json'}")


if __name__ == "__main__":
    main()
