"""Benchmark: whole-image prediction with the MLPs' first layer at the features' native
resolution (`first_layer="native"`) against the paper's order, every feature
upsampled to label resolution first (`first_layer="upsampled"`), side by side in one run.

    python benchmarks/predict_native.py                 # both sizes, about 6 min on 2 cores
    python benchmarks/predict_native.py --size paper    # random ADM-256-shaped features only

- paper: the layer table of config/paper.yaml's ADM-256 (blocks 5, 6, 7, 8, 12 at t 50, 150,
  250: 8448 float16 features a pixel, maps at 32, 64 and 128) filled with random values in
  Zarr stores on disk, and one seed's 10 MLPs with random weights at 34 classes (FFHQ-34: 256
  and 128 hidden units), predicting 256x256 labels;
- default: the embedded default's own run (`snakemake --cores 2` first): every seed's DDPM
  ensemble on its real test stores, scored against the real test labels.

Each route runs in a child process per image count, so that its peak RSS (VmHWM,
`child_process.peak_rss_mb`) is its own: FLOPs of its first image (torch.utils.flop_counter: every matrix product), then seconds per
image over the others. Printed: FLOPs and seconds per image and their ratios, peak RSS at two
image counts (native prediction holds one image at a time: flat), and agreement of the two
routes: pixels with the same majority-vote label, of those the ones where a member's argmax
flipped, and (default) mIoU of each to 4 decimals. Also written to `<work>/predict_native.json`.
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
import zarr
from torch.utils.flop_counter import FlopCounterMode

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from child_process import peak_rss_mb, run_child  # noqa: E402
from ddpmseg.backbones import adm, store_name  # noqa: E402
from ddpmseg.metrics import mean_iou  # noqa: E402
from ddpmseg.mlp import BatchedMLPEnsemble, load_ensemble  # noqa: E402
from ddpmseg.predict import first_layer_route, predict_images  # noqa: E402
from ddpmseg.stores import create_store, native_maps, open_stores  # noqa: E402
from ddpmseg.probes import ImageSubset  # noqa: E402

ROUTES = ("native", "upsampled")


def paper_inputs(work: Path, n_images: int) -> dict:
    """Random float16 stores in the paper's layer table and a random 10-MLP ensemble (34 classes)
    under work/paper/; returns the child's inputs {stores, models, size}."""
    paper = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())["_paper"]
    flags, blocks, timesteps = paper["diffusion"]["flags"], paper["features"]["blocks"], paper["features"]["timesteps"]
    table = adm.layer_table({"flags": flags}, flags["image_size"])
    rng = np.random.default_rng(0)
    stores = []
    for t in timesteps:
        for block in blocks:
            channels, resolution = table[adm.layer_name(block)]
            path = work / "paper" / store_name(adm.layer_name(block), t)
            store = create_store(path, (n_images, channels, resolution, resolution), {"layer": adm.layer_name(block), "timestep": t})
            for i in range(n_images):
                store[i] = rng.standard_normal((channels, resolution, resolution), np.float32).astype(np.float16)
            stores.append(str(path))
    features = sum(table[adm.layer_name(b)][0] for b in blocks) * len(timesteps)
    model_path = work / "paper" / "ensemble.pt"
    torch.save(BatchedMLPEnsemble(10, features, 34, seed=0).eval().state_dict(), model_path)
    return {"stores": stores, "models": [str(model_path)], "size": flags["image_size"], "labels": None}


def default_inputs(results: Path) -> dict:
    """The default run's DDPM ensembles, test stores and test labels; returns the child's inputs."""
    dataset = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["datasets"]
    name = next(iter(dataset))
    method_folder = results / name / "ddpm"
    if not (method_folder / "features.json").exists():
        raise SystemExit(f"{method_folder / 'features.json'} is missing: run `snakemake --cores 2` first "
                         f"(the default run), or pass --size paper")
    described = json.loads((method_folder / "features.json").read_text())
    stores = [str(results.parent / p.replace("/train/", "/test/")) for p in described["stores"]]  # relative to the run
    models = sorted(str(p) for p in method_folder.glob("seed*/ensemble.pt"))
    test = zarr.open_group(str(results / name / "data" / "test.zarr"), mode="r")
    return {"stores": stores, "models": models, "size": int(test.attrs["image_size"]),
            "labels": str(results / name / "data" / "test.zarr"), "runs_own_stores": len(stores) > len(described["cells"])}


def measure_route(inputs: dict, route: str, n_images: int, threads: int, out: Path) -> dict:
    """(In the child process.) FLOPs of image 0, seconds per image over images 1..n-1, peak RSS;
    the majority votes of all n images go to `out` (.npy, (models, n, S, S) uint8)."""
    torch.set_num_threads(threads)
    models = [load_ensemble(p) for p in inputs["models"]]
    stores = open_stores(inputs["stores"])
    size = inputs["size"]
    per_model = len(stores) // len(models) if inputs.get("runs_own_stores") else len(stores)

    def predict(indices):
        subset = [ImageSubset(s, indices) for s in stores]
        if inputs.get("runs_own_stores"):
            return [predict_images([m], subset[k * per_model : (k + 1) * per_model], len(indices), size, first_layer=route)[0]
                    for k, m in enumerate(models)]
        return predict_images(models, subset, len(indices), size, first_layer=route)

    with FlopCounterMode(display=False) as counter:
        first = predict([0])
    start = time.perf_counter()
    rest = predict(list(range(1, n_images)))
    seconds = (time.perf_counter() - start) / (n_images - 1)
    votes = np.stack([np.concatenate([a[0], b[0]]) for a, b in zip(first, rest)])
    np.save(out, votes)
    auto = first_layer_route(models if not inputs.get("runs_own_stores") else models[:1],
                             native_maps(stores[:per_model], 0, "cpu"), size)
    return {"route": route, "auto_route": auto, "images": n_images, "flops_per_image": counter.get_total_flops(),
            "seconds_per_image": seconds, "peak_rss_mb": peak_rss_mb()}


def agreement(native: np.ndarray, upsampled: np.ndarray) -> dict:
    """Share of pixels whose majority label is the same under both routes, and the count of others."""
    same = native == upsampled
    return {"pixels": int(same.size), "same_label_fraction": float(same.mean()), "differing_pixels": int((~same).sum())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["default", "paper", "both"], default="both")
    parser.add_argument("--images", type=int, default=2, help="images of the smaller count (the larger is 4x; paper, default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--results", type=Path, default=REPOSITORY / "results", help="the default run's results folder")
    parser.add_argument("--work", type=Path, default=None, help="folder for stores and results (default: a temporary one)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        request = json.loads(args.child)
        print(json.dumps(measure_route(request["inputs"], request["route"], request["images"], args.threads, Path(request["out"]))))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ddpmseg-predict-native-"))
    work.mkdir(parents=True, exist_ok=True)
    report = []
    for name in (["default", "paper"] if args.size == "both" else [args.size]):
        if name == "paper":
            inputs, small = paper_inputs(work, 4 * args.images), args.images
        else:
            inputs = default_inputs(args.results)
            small = 2
        n_all = open_stores(inputs["stores"][:1])[0].shape[0]
        runs = {}
        # the upsampled route at the small count only at the paper's size (tens of seconds an image)
        for route, n in [("native", small), ("native", n_all if name == "default" else 4 * small), ("upsampled", small)] + (
                [("upsampled", n_all)] if name == "default" else []):
            out = work / f"{name}_{route}_{n}.npy"
            request = json.dumps({"inputs": inputs, "route": route, "images": n, "out": str(out)})
            runs[route, n] = {"size": name, **run_child(__file__, request, "--threads", str(args.threads)), "votes": out}
            r = runs[route, n]
            print(f"{name:8s} {route:9s} {n:3d} images: {r['flops_per_image'] / 1e9:9.1f} GFLOP/image  "
                  f"{r['seconds_per_image']:8.3f} s/image  peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
        native, upsampled = runs["native", small], runs["upsampled", small]
        summary = {"size": name, "flop_ratio": native["flops_per_image"] / upsampled["flops_per_image"],
                   "time_ratio": native["seconds_per_image"] / upsampled["seconds_per_image"],
                   **agreement(np.load(native["votes"]), np.load(upsampled["votes"]))}
        if name == "default":
            test = zarr.open_group(inputs["labels"], mode="r")
            labels, classes, ignore = test["labels"][:], len(test.attrs["classes"]), test.attrs["ignore_label"]
            full = {route: np.load(runs[route, n_all]["votes"]) for route in ROUTES}
            summary.update(agreement(full["native"], full["upsampled"]))
            for route in ROUTES:
                summary[f"miou_{route}"] = [round(100 * mean_iou(v, labels, classes, ignore), 4) for v in full[route]]
        print(f"{name:8s} native / upsampled: {summary['flop_ratio']:.4f} of the FLOPs, {summary['time_ratio']:.3f} of the "
              f"time; same majority label on {100 * summary['same_label_fraction']:.4f}% of {summary['pixels']} pixels "
              f"({summary['differing_pixels']} differ); first_layer 'auto' (the workflow's) takes {native['auto_route']}"
              + (f"; mIoU per seed native {summary['miou_native']}, upsampled {summary['miou_upsampled']}"
                 if name == "default" else ""), flush=True)
        report.append({"runs": [{k: str(v) if k == "votes" else v for k, v in r.items()} for r in runs.values()],
                       "summary": summary})
    (work / "predict_native.json").write_text(json.dumps(report, indent=1))
    print(f"results: {work / 'predict_native.json'}")


if __name__ == "__main__":
    main()
