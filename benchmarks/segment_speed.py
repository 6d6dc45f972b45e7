"""Benchmark: segmenting throughput of a seed's ensemble (feature extraction + the MLPs) against
the DeepLab distilled from it (DatasetDDPM), each in torch and exported to ONNX (`ddpmseg export`)
through onnxruntime, at the embedded default's size and at the paper's, side by side in one run.

    python benchmarks/segment_speed.py                  # both sizes, torch and onnxruntime
    python benchmarks/segment_speed.py --size default   # the default's 48x48 model only
    python benchmarks/segment_speed.py --device cuda    # the GPU check (onnxruntime needs onnxruntime-gpu)

Weights are random (timing and memory do not depend on them). Per size, both segmenters are
saved as bundles (ddpmseg.segmenter) and exported to ONNX, each in a subprocess, and each
(segmenter, runtime) is timed in its own subprocess, so that its peak RSS (VmHWM,
`child_process.peak_rss_mb`) is its own: torch: `Segmenter.load(bundle).predict(images)` on one
warm-up image, then on `--images` images, one call (the workflow's folder segmentation does the
same); onnxruntime: one session, one warm-up image, then the images one call each. Sizes:

- default: config.yaml's 48x48 ADM (blocks 0-3 at t 50 and 150, 10 MLPs, 7 classes) against
  config/distill.yaml's DeepLab backbone (mobilenet_v3_large) at its default input size (128);
- paper: the paper's ADM-256 (blocks 5, 6, 7, 8, 12 at t 50, 150, 250: 8448 features a pixel;
  10 MLPs with 256 hidden units, 34 classes as FFHQ-34) against deeplabv3_resnet101, at 256x256.

Printed: seconds per image, images per second, peak RSS, and the speed-ups against the torch
ensemble; also written to `<work>/segment_speed.json`.
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
from ddpmseg.methods import plans  # noqa: E402
from ddpmseg.mlp import BatchedMLPEnsemble  # noqa: E402
from ddpmseg.plan.distill import deeplab_auto_input_size  # noqa: E402
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
    cells = [(layer, t) for t in plan.timesteps for layer in plan.layers]
    features = sum(plan.table[layer][0] for layer, _ in cells)
    ensemble_path = work / f"{name}_ensemble.pt"
    torch.save(BatchedMLPEnsemble(10, features, settings["classes"], seed=0).eval().state_dict(), ensemble_path)
    classes = [f"class{c}" for c in range(settings["classes"])]
    common = dict(classes=classes, ignore_label=255, image_size=size, non_square="error", resize="lanczos")
    ensemble = Segmenter.for_ensemble(
        ensemble_path, plan=plan, cells=cells, checkpoint=checkpoint, model_seed=0, noise_seed=0, noise_device="cpu",
        batch_images=1, threads={"extraction": threads, "prediction": threads}, vote="majority",
        provenance={"benchmark": name}, **common)
    deeplab = Segmenter.for_deeplab(build_deeplab(settings["backbone"], len(classes)).state_dict(),
                                    backbone=settings["backbone"], threads=threads, provenance={"benchmark": name},
                                    input_size=deeplab_auto_input_size(size), **common)
    folders = {"ensemble": work / f"{name}_ensemble", f"deeplab ({settings['backbone']})": work / f"{name}_deeplab"}
    ensemble.save(folders["ensemble"])
    deeplab.save(folders[f"deeplab ({settings['backbone']})"])
    print(f"{name}: {size}x{size}, ensemble of 10 MLPs on {features} features a pixel ({len(cells)} cells), "
          f"DeepLab {settings['backbone']} at {deeplab_auto_input_size(size)}x{deeplab_auto_input_size(size)}", flush=True)
    return folders


def time_bundle(folder: str, n_images: int, runtime: str, device: str, threads: int) -> dict:
    """(In the child process.) Seconds per image on n_images after one warm-up: the bundle's
    predict() in torch, or its ONNX export (folder/model.onnx) in onnxruntime, one image a call."""
    segmenter = Segmenter.load(folder)
    size = segmenter.image_size
    images = np.random.default_rng(0).integers(0, 256, (n_images + 1, size, size, 3), dtype=np.uint8)
    if runtime == "torch":
        def run(batch):
            segmenter.predict(batch, device=device)
    else:
        import onnxruntime

        provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
        if provider not in onnxruntime.get_available_providers():
            return {"skipped": f"onnxruntime has no {provider} (install onnxruntime-gpu)"}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(Path(folder) / "model.onnx"), options, providers=[provider])

        def run(batch):
            for image in batch:
                session.run(None, {"image": image[None]})
    run(images[:1])
    start = time.perf_counter()
    run(images[1:])
    seconds = (time.perf_counter() - start) / n_images
    return {"seconds_per_image": seconds, "images_per_second": 1 / seconds, "peak_rss_mb": peak_rss_mb()}


def export_bundle(folder: str) -> dict:
    """(In the child process.) The bundle exported to folder/model.onnx (`ddpmseg.export`)."""
    from ddpmseg.export import export_onnx

    segmenter = Segmenter.load(folder)
    size = segmenter.image_size
    start = time.perf_counter()
    export_onnx(segmenter, Path(folder) / "model.onnx", np.full((1, size, size, 3), 128, np.uint8))
    return {"export_seconds": time.perf_counter() - start, "export_peak_rss_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["default", "paper", "both"], default="both")
    parser.add_argument("--images", type=int, default=None, help="timed images (default: 8 default-size, 2 paper)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of extraction and prediction")
    parser.add_argument("--work", type=Path, default=None, help="folder for the bundles and results (default: a temporary one)")
    parser.add_argument("--device", default="cpu", help="torch device (and onnxruntime's CUDA provider for cuda)")
    parser.add_argument("--runtimes", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-task", choices=["time", "export"], default="time", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", default="torch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        torch.set_num_threads(args.threads)
        print(json.dumps(export_bundle(args.child) if args.child_task == "export" else
                         time_bundle(args.child, args.images, args.runtime, args.device, args.threads)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ddpmseg-segment-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in (["default", "paper"] if args.size == "both" else [args.size]):
        n_images = args.images or (8 if name == "default" else 2)
        for segmenter, folder in write_bundles(name, work, args.threads).items():
            exported = (run_child(__file__, str(folder), "--child-task", "export", "--threads", str(args.threads))
                        if "onnxruntime" in args.runtimes else {})
            for runtime in args.runtimes:
                timed = run_child(__file__, str(folder), "--images", str(n_images), "--runtime", runtime,
                                  "--device", args.device, "--threads", str(args.threads))
                results.append({"size": name, "segmenter": segmenter, "runtime": runtime, "device": args.device,
                                "images": n_images, **timed, **(exported if runtime == "onnxruntime" else {})})
                row = results[-1]
                print(f"  {segmenter:28s} {runtime:12s} " + (row["skipped"] if "skipped" in row else
                      f"{row['seconds_per_image']:8.3f} s/image {row['images_per_second']:8.2f} images/s  "
                      f"peak RSS {row['peak_rss_mb']:7.0f} MB"), flush=True)
        timed = [r for r in results if r["size"] == name and "skipped" not in r]
        base = next(r for r in timed if r["segmenter"] == "ensemble" and r["runtime"] == "torch") \
            if "torch" in args.runtimes else timed[0]
        for row in timed:
            row["speedup_vs_torch_ensemble"] = base["seconds_per_image"] / row["seconds_per_image"]
        print("  against the ensemble in torch: " + ", ".join(
            f"{r['segmenter']} {r['runtime']} {r['speedup_vs_torch_ensemble']:.1f}x" for r in timed), flush=True)
    (work / "segment_speed.json").write_text(json.dumps(results, indent=1))
    print(f"results: {work / 'segment_speed.json'}")


if __name__ == "__main__":
    main()
