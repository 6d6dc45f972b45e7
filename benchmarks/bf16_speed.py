"""Benchmark: bfloat16 against float32 on this CPU, side by side in one run, for the extraction
(`features.precision`) and the ensemble (`ensemble.precision`).

    python benchmarks/bf16_speed.py             # the embedded default's sizes, about 3 min on 2 cores
    python benchmarks/bf16_speed.py --size paper   # ADM-256 and 8448 features (slow on a CPU: ~15 min)

Printed per size: whether the CPU has native bf16 (`precision.cpu_has_native_bf16`), a 2048^2
matmul in each dtype, seconds per image of the ADM forward (random weights, the config's blocks
and timesteps with early exit, one image per batch), the features' largest deviation from float32
relative to their largest value, and the ensemble's training member-pixels/s and prediction
seconds per image (10 MLPs on random float16 stores of the extraction's width). Each figure is the
best of `--repeats` alternating runs, so both dtypes see the same machine load.
Written also to `<work>/bf16_speed.json`.
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

from ddpmseg import precision  # noqa: E402
from ddpmseg.backbones import adm  # noqa: E402
from ddpmseg.ensemble import train_ensemble  # noqa: E402
from ddpmseg.model_input import shared_noise  # noqa: E402
from ddpmseg.predict import predict_images  # noqa: E402
from ddpmseg.stores import create_store, open_stores  # noqa: E402

DTYPES = ("float32", "bf16")


def settings(size: str) -> tuple:
    """(flags, blocks, timesteps, classes) of the embedded default or of the paper."""
    if size == "default":
        d = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["datasets"]["creatures7"]
        return d["diffusion"]["flags"], d["features"]["blocks"], d["features"]["timesteps"], 7
    p = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())["_paper"]
    return {**p["diffusion"]["flags"], "use_fp16": False}, p["features"]["blocks"], p["features"]["timesteps"], 34


def best_of(repeats: int, runs: dict) -> dict:
    """{name: best seconds} of calling each runs[name]() `repeats` times, alternating names."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["default", "paper"], default="default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="ddpmseg-bf16-"))
    work.mkdir(parents=True, exist_ok=True)
    flags, blocks, timesteps, classes = settings(args.size)
    size = flags["image_size"]
    result = {"size": args.size, "native_bf16": precision.cpu_has_native_bf16(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads}

    a32 = torch.randn(2048, 2048)
    operands = {"float32": (a32, a32.T.contiguous()), "bf16": (a32.bfloat16(), a32.T.contiguous().bfloat16())}
    seconds = best_of(args.repeats, {d: (lambda d=d: operands[d][0] @ operands[d][1]) for d in DTYPES})
    result["matmul_gflops"] = {d: 2 * 2048 ** 3 / seconds[d] / 1e9 for d in DTYPES}

    model = adm.build({"flags": flags, "weights": "random"}, size, None, "cpu", seed=0)
    layers = [adm.layer_name(b) for b in blocks]
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = shared_noise(size, 0)

    def forward(dtype):
        with precision.cpu_autocast(dtype):
            maps = adm.activations(model, image, layers, timesteps, noise)
        return torch.cat([maps[layer, t].flatten() for t in timesteps for layer in layers])

    seconds = best_of(args.repeats, {d: (lambda d=d: forward(d)) for d in DTYPES})
    exact, low = forward("float32"), forward("bf16")
    result["extraction_seconds_per_image"] = seconds
    result["features_relative_deviation"] = float((low - exact).abs().max() / exact.abs().max())

    table = adm.layer_table({"flags": flags}, size)
    rng = np.random.default_rng(0)
    paths = []
    for t in timesteps:
        for layer in layers:
            channels, resolution = table[layer]
            store = create_store(work / f"{layer}_t{t}.zarr", (4, channels, resolution, resolution), {})
            store[:] = rng.standard_normal(store.shape, np.float32).astype(np.float16)
            paths.append(work / f"{layer}_t{t}.zarr")
    stores = open_stores(paths)
    labels = rng.integers(0, classes, (4, size, size), dtype=np.uint8)
    batches = 100
    trained = {}

    def train(dtype):
        (trained[dtype],), _ = train_ensemble(
            stores, labels, classes, 255, seeds=[0], n_members=10, batch_size=64, lr=1e-3, max_epochs=1000,
            early_stop_epoch=1000, patience=10 ** 9, min_class_pixels=0, buffer_mb=64, cache_mb=256,
            max_batches=batches, precision=dtype)

    seconds = best_of(args.repeats, {d: (lambda d=d: train(d)) for d in DTYPES})
    result["training_member_pixels_per_second"] = {d: 10 * 64 * batches / seconds[d] for d in DTYPES}
    seconds = best_of(args.repeats, {d: (lambda d=d: predict_images([trained[d]], stores, 2, size)) for d in DTYPES})
    result["prediction_seconds_per_image"] = {d: seconds[d] / 2 for d in DTYPES}

    print(f"{args.size}: native bf16 {result['native_bf16']} (torch CPU capability {result['cpu_capability']}), "
          f"{args.threads} threads")
    for name, unit, higher_is_better in [("matmul_gflops", "GFLOP/s (2048^2)", True),
                                         ("extraction_seconds_per_image", "s/image extraction", False),
                                         ("training_member_pixels_per_second", "member-pixels/s training", True),
                                         ("prediction_seconds_per_image", "s/image prediction", False)]:
        v = result[name]
        speedup = v["bf16"] / v["float32"] if higher_is_better else v["float32"] / v["bf16"]
        print(f"  {unit:28s} float32 {v['float32']:12.4g}   bf16 {v['bf16']:12.4g}   bf16 speed-up {speedup:.2f}x")
    print(f"  features: largest bf16 deviation {result['features_relative_deviation']:.3e} of the largest value")
    (work / "bf16_speed.json").write_text(json.dumps(result, indent=1))
    print(f"results: {work / 'bf16_speed.json'}")


if __name__ == "__main__":
    main()
