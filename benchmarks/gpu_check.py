"""One command that checks the CUDA paths of the workflow on a machine with one GPU, offline:

    python benchmarks/gpu_check.py          # on a CUDA GPU: the paper's sizes, within 8 minutes
    python benchmarks/gpu_check.py --cpu    # the same checks on the CPU at small sizes (proves the script)

Checks, one table row each (exit status 1 if any fails):
1. matmul peak: a large dense matrix product (fp16 8192^2 on the GPU, fp32 1024^2 on the CPU), TFLOP/s,
   the measure of the next row;
2. extraction: the paper's ADM-256 (config/paper.yaml's flags, random weights, fp16 as the paper
   runs it; --cpu: the embedded default's 48x48 ADM in fp32), its blocks at its 3 timesteps with
   early exit, in batches: images/s, and TFLOP/s (torch.utils.flop_counter) as a share of row 1;
3. features on the device against the CPU in float32 for one image: largest difference relative
   to the largest value, within float16 bounds (--cpu: the same computation twice, exactly equal);
4. ensemble training: 10 MLPs on random pixels of the extraction's feature width (8448 at the
   paper's size) from Zarr stores, a few hundred batches: member-pixels/s;
5. prediction of 4 images with the first layer at native resolution and with the paper's
   upsampled order: images/s each, and their majority votes agree on >= 99.99% of the pixels;
6. device predictions against CPU predictions of the same ensemble and features (>= 99.9% of
   the pixels the same label);
7. the tiny test workflow (tests/config.test.yaml) end to end, with `ensemble.gpu: true` where
   a GPU is visible: results/table2.csv exists, has every method's row and mIoUs in (0, 100].
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from ddpmseg.backbones import adm  # noqa: E402
from ddpmseg.ensemble import train_ensemble  # noqa: E402
from ddpmseg.model_input import shared_noise  # noqa: E402
from ddpmseg.predict import predict_images  # noqa: E402
from ddpmseg.stores import create_store, open_stores  # noqa: E402

FP16_RELATIVE_BOUND = 2e-2  # fp16 has 11 bits of mantissa; a deep UNet's activations drift a few ulps a block


def timed(function, device: str):
    """(result, seconds) of function(), synchronising the GPU around it."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def matmul_peak(device: str) -> float:
    """Measured dense matmul TFLOP/s: fp16 8192^2 on the GPU, fp32 1024^2 on the CPU (best of 5)."""
    n, dtype = (8192, torch.float16) if device == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = min(timed(lambda: a @ b, device)[1] for _ in range(5))
    return 2 * n ** 3 / best / 1e12


def adm_settings(cpu: bool) -> tuple:
    """(flags, blocks, timesteps, batch) of the extraction: the paper's, or the default's with --cpu."""
    if cpu:
        default = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["datasets"]["creatures7"]
        return {**default["diffusion"]["flags"], "use_fp16": False}, default["features"]["blocks"], default["features"]["timesteps"], 2
    paper = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())["_paper"]
    return paper["diffusion"]["flags"], paper["features"]["blocks"], paper["features"]["timesteps"], 4


def extract(model, images: torch.Tensor, layers, timesteps, noise) -> torch.Tensor:
    """Every map of `images` (N, 3, S, S), flattened and concatenated per image: (N, sum C*h*w) float32."""
    maps = adm.activations(model, images, layers, timesteps, noise)
    return torch.cat([maps[layer, t].flatten(1) for t in timesteps for layer in layers], dim=1)


def check_extraction(device: str, cpu: bool, peak: float, rows: list) -> dict:
    flags, blocks, timesteps, batch = adm_settings(cpu)
    size = flags["image_size"]
    layers = [adm.layer_name(b) for b in blocks]
    table = adm.layer_table({"flags": flags}, size)
    # random weights drawn on the CPU (a CUDA generator gives other numbers), then copied to the device model
    reference_model = adm.build({"flags": {**flags, "use_fp16": False}, "weights": "random"}, size, None, "cpu", seed=0)
    model = adm.build({"flags": flags, "weights": "random"}, size, None, device, seed=0)
    model.unet.load_state_dict(reference_model.unet.state_dict())
    noise = shared_noise(size, 0, "cpu").to(device)
    images = torch.rand(batch * 2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    extract(model, images[:batch].to(device), layers, timesteps, noise)  # warm-up
    with FlopCounterMode(display=False) as counter:
        extract(model, images[:batch].to(device), layers, timesteps, noise)
    flops = counter.get_total_flops() / batch
    _, seconds = timed(lambda: [extract(model, images[i : i + batch].to(device), layers, timesteps, noise)
                                for i in range(0, len(images), batch)], device)
    achieved = flops * len(images) / seconds / 1e12
    rows.append(("extraction", f"{len(images) / seconds:.2f} images/s, {achieved:.2f} TFLOP/s = "
                 f"{100 * achieved / peak:.0f}% of the matmul peak ({flops / 1e12:.3f} TFLOP/image, batch {batch})", True))
    # the device's features against float32 CPU features of one image
    on_device = extract(model, images[:1].to(device), layers, timesteps, noise).float().cpu()
    reference = extract(reference_model, images[:1], layers, timesteps, noise.cpu())
    relative = float((on_device - reference).abs().max() / reference.abs().max())
    bound = FP16_RELATIVE_BOUND if device == "cuda" else 0.0
    rows.append(("features: device vs CPU fp32", f"largest difference {relative:.2e} of the largest value "
                 f"(bound {bound:.0e})", relative <= bound))
    return {"table": table, "layers": layers, "timesteps": timesteps, "size": size}


def feature_stores(work: Path, extraction: dict, n_images: int) -> list:
    """Random float16 stores in the extraction's layer table (N, C, h, h)."""
    rng = np.random.default_rng(0)
    stores = []
    for t in extraction["timesteps"]:
        for layer in extraction["layers"]:
            channels, resolution = extraction["table"][layer]
            store = create_store(work / f"{layer}_t{t}.zarr", (n_images, channels, resolution, resolution), {})
            store[:] = rng.standard_normal(store.shape, np.float32).astype(np.float16)
            stores.append(work / f"{layer}_t{t}.zarr")
    return open_stores(stores)


def check_ensemble(device: str, cpu: bool, extraction: dict, work: Path, rows: list) -> None:
    size, n_images, classes = extraction["size"], 4, 7 if cpu else 34
    stores = feature_stores(work, extraction, n_images)
    features = sum(s.shape[1] for s in stores)
    labels = np.random.default_rng(1).integers(0, classes, (n_images, size, size), dtype=np.uint8)
    batches, batch_size = (100, 64) if cpu else (300, 64)
    ((model,), _), seconds = timed(lambda: train_ensemble(
        stores, labels, classes, 255, seeds=[0], n_members=10, batch_size=batch_size, lr=1e-3, max_epochs=1000,
        early_stop_epoch=1000, patience=10 ** 9, min_class_pixels=0, buffer_mb=64, cache_mb=256, device=device,
        max_batches=batches), device)
    rows.append(("ensemble training", f"{10 * batches * batch_size / seconds:,.0f} member-pixels/s "
                 f"({batches} batches of {batch_size} pixels x 10 members, {features} features)", True))
    votes = {}
    for route in ("native", "upsampled"):
        [(majority, _, _)], seconds = timed(lambda: predict_images([model], stores, n_images, size, device, first_layer=route), device)
        votes[route] = majority
        rows.append((f"prediction ({route} first layer)", f"{n_images / seconds:.2f} images/s at {size}x{size}", True))
    same = float((votes["native"] == votes["upsampled"]).mean())
    rows.append(("prediction: native vs upsampled", f"{100 * same:.4f}% of the pixels the same label", same >= 0.9999))
    [(on_cpu, _, _)] = predict_images([model], stores, n_images, size, "cpu")
    same = float((votes["native"] == on_cpu).mean())
    rows.append(("prediction: device vs CPU", f"{100 * same:.4f}% of the pixels the same label", same >= 0.999))


def check_workflow(device: str, work: Path, rows: list) -> None:
    config = yaml.safe_load((REPOSITORY / "tests" / "config.test.yaml").read_text())
    if device == "cuda":
        config["datasets"]["tiny"].setdefault("ensemble", {})["gpu"] = True
    (work / "workflow").mkdir()
    (work / "workflow" / "config.yaml").write_text((REPOSITORY / "config.yaml").read_text())  # merged under the tiny one
    (work / "workflow" / "tiny.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPOSITORY / "Snakefile"),
                             "--directory", str(work / "workflow"), "--cores", "2", "results/table2.csv",
                             f"--configfile={work / 'workflow' / 'tiny.yaml'}"],
                            capture_output=True, text=True)
    minutes = (time.perf_counter() - start) / 60
    table = work / "workflow" / "results" / "table2.csv"
    if result.returncode or not table.exists():
        rows.append(("tiny workflow", f"failed after {minutes:.1f} min: {result.stderr.strip().splitlines()[-1:]}", False))
        return
    frame = pd.read_csv(table)
    cells = frame.filter(like="tiny").iloc[:, 0].astype(str)
    # method rows hold "mean ± std"; the rows below them describe the runs (layers, budgets)
    values = pd.to_numeric(cells[cells.str.contains(" ± ")].str.split(" ").str[0], errors="coerce")
    ok = bool(len(values) >= 6 and values.between(0, 100, inclusive="right").all())
    rows.append(("tiny workflow", f"{len(values)} method rows in results/table2.csv in {minutes:.1f} min, "
                 f"mIoU {values.min():.1f}-{values.max():.1f}" + (" (ensembles on the GPU)" if device == "cuda" else ""), ok))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run every check on the CPU at small sizes")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU is visible; run on a GPU machine, or pass --cpu to check the script on the CPU")
    device = "cpu" if args.cpu else "cuda"
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddpmseg-gpu-check-") as folder:
        work = Path(folder)
        start = time.perf_counter()
        peak = matmul_peak(device)
        rows.append(("matmul peak", f"{peak:.2f} TFLOP/s ({'fp16 8192^2' if device == 'cuda' else 'fp32 1024^2'})", True))
        extraction = check_extraction(device, args.cpu, peak, rows)
        check_ensemble(device, args.cpu, extraction, work, rows)
        check_workflow(device, work, rows)
        minutes = (time.perf_counter() - start) / 60
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"\ngpu_check on {name} ({'--cpu, small sizes' if args.cpu else 'paper sizes'}), {minutes:.1f} min\n")
    print("| check | figure | ok |\n|---|---|---|")
    for check, figure, ok in rows:
        print(f"| {check} | {figure} | {'yes' if ok else 'FAILED'} |")
    if args.json:
        args.json.write_text(json.dumps([{"check": c, "figure": f, "ok": ok} for c, f, ok in rows], indent=1))
    sys.exit(0 if all(ok for _, _, ok in rows) else 1)


if __name__ == "__main__":
    main()
