"""Benchmark: the paper's code path against ours, on the same weights, images and noise.

    python benchmarks/compare_paper_path.py                 # both sizes, about 25 min on 2 cores
    python benchmarks/compare_paper_path.py --size default  # the small default model only

For each size (the paper's ADM at 256x256 with its blocks {5,6,7,8,12} and steps
{50,150,250}; the small default model at 48x48 with its config's cells), every stage runs in
its own subprocess so that its peak RSS (VmHWM, `child_process.peak_rss_mb`) is its own:

- paper: `paper_path.py`: full forward per timestep at batch 1, float32 upsampled features of
  all pixels in one in-RAM matrix (plus the reshape copy), members trained one after another
  from it; run at `--paper-images` only (its memory is N x D x S^2 x 4 bytes twice over; at
  larger N it is printed as computed, never as measured).
- ours-extract: `features.extract_features` with the ADM source (forward stopped after the deepest
  block, the timesteps of an image in one batch) into float16 native-resolution Zarr stores.
- ours-train: `ensemble.train_ensemble` streaming those stores at each of `--ours-images`
  (buffers of `--buffer-mb`, a cache of `--cache-mb`, the paper config's settings).

Printed per path: extraction seconds per image, FLOPs per image (torch.utils.flop_counter on
the meta device), cached feature bytes per image, ensemble-training peak RSS, training
throughput (member-pixels per second: one pixel through one member's step), and ours/paper
ratios; the features of the two paths compared at sampled pixels (max abs difference against
float16 rounding); with `--miou-seeds`, both paths trained to their stop rule and scored on
the test split (default size only). Training images beyond `--extract-images` repeat the
extracted ones' features: memory and speed do not depend on the values. Results also go to
`<work>/results.json`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from child_process import peak_rss_mb  # noqa: E402
from ddpmseg.datasets import load_image, load_label  # noqa: E402
from ddpmseg.diffusion import build_model_and_diffusion, build_unet, load_model, randomize_weights  # noqa: E402
from ddpmseg.ensemble import train_ensemble  # noqa: E402
from ddpmseg.metrics import mean_iou  # noqa: E402
from ddpmseg.predict import predict_images  # noqa: E402
from ddpmseg.backbones import adm, store_name  # noqa: E402
from ddpmseg.backbones.adm import decoder_activations  # noqa: E402
from ddpmseg.features import extract_features  # noqa: E402
from ddpmseg.formats.paper import list_split, read_meta  # noqa: E402
from ddpmseg.model_input import images_to_model_input, shared_noise  # noqa: E402
from ddpmseg.stores import (  # noqa: E402
    create_store, native_bytes_per_image, native_maps, open_stores, sample_pixel_features,
)
from ddpmseg.probes import ImageSubset  # noqa: E402
from paper_path import (  # noqa: E402
    PaperFeatureExtractor, collect_features, paper_input, paper_noise, predict_paper, prepare_data,
    train_paper_ensemble,
)

GB = 1e9
FLOAT16_ROUNDING = 2.0**-11  # relative: half a unit in the last place of float16's 10-bit mantissa


def size_settings(size: str) -> dict:
    """Model flags and cells of a benchmark size: 'paper' (ADM 256), 'default' (48x48) or 'smoke'."""
    if size == "paper":
        paper = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())["_paper"]
        return dict(flags=paper["diffusion"]["flags"], blocks=paper["features"]["blocks"],
                    timesteps=paper["features"]["timesteps"])
    if size == "default":
        default = yaml.safe_load((REPOSITORY / "config.yaml").read_text())["datasets"]["creatures7"]
        return dict(flags=default["diffusion"]["flags"], blocks=default["features"]["blocks"],
                    timesteps=default["features"]["timesteps"])
    if size == "smoke":
        flags = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2", attention_resolutions="16",
                     num_heads=2, learn_sigma=False, diffusion_steps=1000, noise_schedule="linear")
        return dict(flags=flags, blocks=[0, 2], timesteps=[50, 150])
    raise ValueError(f"unknown size {size!r}")


def build_model(spec: dict):
    """The benchmark's UNet: the checkpoint's weights, or random ones seeded with spec['weight_seed']."""
    if spec["checkpoint"]:
        model, diffusion, _ = load_model(spec["checkpoint"], spec["flags"])
        return model, diffusion
    model, diffusion = build_model_and_diffusion(spec["flags"])
    randomize_weights(model, spec["weight_seed"])
    return model, diffusion


def flops_per_image(spec: dict) -> dict:
    """FLOPs (2 x MAC) per image on the meta device: the paper's full forward per timestep,
    and our single early-exit forward of all timesteps."""
    size, timesteps = spec["flags"]["image_size"], spec["timesteps"]
    with torch.device("meta"), torch.no_grad():
        model = build_unet(spec["flags"]).eval()
        with FlopCounterMode(display=False) as paper:
            for t in timesteps:
                model(torch.zeros(1, 3, size, size), torch.tensor([t]))
        with FlopCounterMode(display=False) as ours:
            decoder_activations(model, torch.zeros(len(timesteps), 3, size, size), torch.tensor(timesteps), spec["blocks"])
    return {"paper": paper.get_total_flops(), "ours": ours.get_total_flops()}


def load_data(dataset, image_size: int, n_train: int, n_test: int) -> dict:
    """The first n_train train and n_test test images and labels, resized to image_size.
    Fewer images on disk than asked: they repeat (for memory and speed only)."""
    meta = read_meta(dataset)
    out = {"num_classes": len(meta["classes"]), "ignore_label": meta["ignore_label"]}
    for split, n in (("train", n_train), ("test", n_test)):
        items = list_split(dataset, split)[: max(n, 1)]
        items = [items[i % len(items)] for i in range(n)]
        out[f"{split}_images"] = np.stack([load_image(image, image_size) for _, image, _ in items]) if n else None
        out[f"{split}_labels"] = (np.stack([load_label(label, image_size, meta["ignore_label"]) for _, _, label in items])
                                  if n else None)
    return out


def sample_pixels(image_size: int, n: int) -> np.ndarray:
    """Fixed pixels (flat indices) for the feature comparison: the four corners and random others."""
    corners = [0, image_size - 1, image_size * (image_size - 1), image_size * image_size - 1]
    rng = np.random.default_rng(0)
    return np.unique(np.concatenate([corners, rng.choice(image_size * image_size, n, replace=False)]))


# ---- stages: each runs in its own process (`--stage NAME --spec FILE`) and writes spec['out']


def stage_paper(spec: dict) -> dict:
    model, diffusion = build_model(spec)
    data = np.load(spec["data"])
    images, labels = data["train_images"][: spec["n_train"]], torch.from_numpy(data["train_labels"][: spec["n_train"]])
    size, n_extract = images.shape[1], min(spec["n_extract"], spec["n_train"])
    extractor = PaperFeatureExtractor(model, diffusion, spec["blocks"], spec["timesteps"], paper_noise(size, 0))
    pixels = torch.from_numpy(sample_pixels(size, spec["n_sample_pixels"]))
    seconds, samples = [], []

    def extract(image):
        start = time.perf_counter()
        features = collect_features(extractor(paper_input(image)), size)
        seconds.append(time.perf_counter() - start)
        samples.append(features.reshape(len(features), -1)[:, pixels].T.numpy())  # for the comparison
        return features

    table = adm.layer_table({"flags": spec["flags"]}, size)
    dim = len(spec["timesteps"]) * sum(table[adm.layer_name(b)][0] for b in spec["blocks"])
    features, targets = prepare_data(images, labels, extract, dim, spec["ignore_label"], n_extract)
    np.save(spec["sample_out"], np.stack(samples))
    exact = exact_activations(model, diffusion, extractor, images[0], spec)
    # the first image carries one-time costs: timed are the others
    result = {"extract_seconds_per_image": float(np.mean(seconds[1:])) if len(seconds) > 1 else None,
              "dim": features.shape[1], "exact": exact}
    start = time.perf_counter()
    member_pixels, miou = 0, []
    for seed in spec["seeds"]:
        members, trained = train_paper_ensemble(features, targets, spec["num_classes"], n_members=spec["n_members"],
                                                seed=seed, **spec["train"])
        member_pixels += trained
        if spec["predict_test"]:
            miou.append(_paper_test_miou(spec, extractor, members, data))
    result.update(train_seconds=time.perf_counter() - start, member_pixels=member_pixels, miou=miou,
                  peak_rss=int(peak_rss_mb() * 2**20))
    return result


def exact_activations(model, diffusion, extractor, image, spec) -> dict:
    """Our input, noise and stopped forward against the paper's hooks, before any storage: the
    decoder activations of one image at each timestep alone (batch 1, as the paper runs),
    compared bit for bit. A channels-last input or other noise shows here, far below the
    float16 bound of the stored features."""
    paper = extractor(paper_input(image))  # timestep-major, block-minor
    size, blocks = image.shape[0], spec["blocks"]
    ours = []
    for t in spec["timesteps"]:
        t = torch.tensor([t])
        x_t = diffusion.q_sample(images_to_model_input(image[None]), t, noise=shared_noise(size, 0))
        activations = decoder_activations(model, x_t, t, blocks)
        ours += [activations[b] for b in blocks]
    differences = [float((a - b).abs().max()) for a, b in zip(paper, ours)]
    return {"bit_identical": all(torch.equal(a, b) for a, b in zip(paper, ours)),
            "max_abs_difference": max(differences), "maps": len(paper)}


def _paper_test_miou(spec, extractor, members, data) -> float:
    size = data["test_images"].shape[1]
    predictions = np.stack([
        predict_paper(members, collect_features(extractor(paper_input(image)), size)).numpy()
        for image in data["test_images"]
    ])
    return mean_iou(predictions, data["test_labels"], spec["num_classes"], spec["ignore_label"])


def stage_ours_extract(spec: dict) -> dict:
    model, diffusion = build_model(spec)
    data = np.load(spec["data"])
    work = Path(spec["work"])
    images = data["train_images"][: spec["n_extract"]]
    size = images.shape[1]
    source_model = adm.adm_parts(model, diffusion, spec["flags"])
    layers = [adm.layer_name(b) for b in spec["blocks"]]
    table = adm.layer_table({"flags": spec["flags"]}, size)

    def extract(images, out_dir):
        return extract_features("adm", source_model, images, list(range(len(images))), layers, spec["timesteps"],
                                table, out_dir, {}, noise_seed=0, batch_images=1)

    extract(images[:1], work / "warmup")  # the first image runs alone (one-time setup costs), the others are timed
    start = time.perf_counter()
    paths = extract(images, work / "extracted")
    extract_seconds = (time.perf_counter() - start) / len(images)
    extracted = open_stores(_store_paths(spec, work / "extracted"))
    stored_bytes = sum(_directory_bytes(p) for p in paths) / len(images)
    native_bytes = native_bytes_per_image(extracted)
    # our features at the comparison's pixels, read the way training reads them
    pixels = torch.from_numpy(sample_pixels(size, spec["n_sample_pixels"]))
    dim = sum(s.shape[1] for s in extracted)
    sampled = np.zeros((len(images), len(pixels), dim), np.float32)
    for i in range(len(images)):
        sample_pixel_features(native_maps(extracted, i), pixels, size, torch.from_numpy(sampled[i]))
    np.save(spec["sample_out"], sampled)
    # training stores of max(ours_images) images, repeating the extracted ones
    n_train = spec["n_train_stores"]
    for path, source in zip(_store_paths(spec, work / "train"), extracted):
        target = create_store(path, (n_train, *source.shape[1:]), {})
        for i in range(n_train):
            target[i] = source[i % len(images)]
    if spec["predict_test"]:  # the real images of the mIoU check
        for split, n in (("train", spec["n_real"]), ("test", len(data["test_images"]))):
            extract(data[f"{split}_images"][:n], work / f"real_{split}")
    return {"extract_seconds_per_image": extract_seconds, "stored_bytes_per_image": stored_bytes,
            "native_bytes_per_image": native_bytes, "dim": dim, "peak_rss": int(peak_rss_mb() * 2**20)}


def _store_paths(spec: dict, folder: Path) -> list:
    """The stores of the spec's cells under `folder`, in the paper's order: timestep-major, block-minor."""
    return [folder / store_name(adm.layer_name(b), t) for t in sorted(spec["timesteps"]) for b in sorted(spec["blocks"])]


def _directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def stage_ours_train(spec: dict) -> dict:
    data = np.load(spec["data"])
    work = Path(spec["work"])
    stores = [ImageSubset(s, range(spec["n_train"])) for s in open_stores(_store_paths(spec, work / spec["train_stores"]))]
    labels = data["train_labels"][: spec["n_train"]]
    train = spec["train"]
    settings = dict(n_members=spec["n_members"], batch_size=64, lr=1e-3, max_epochs=train["max_epochs"],
                    early_stop_epoch=train["early_stop_epoch"], patience=train["patience"], min_class_pixels=0,
                    buffer_mb=spec["buffer_mb"], cache_mb=spec["cache_mb"], max_batches=train["max_batches"])
    start = time.perf_counter()
    models, history = train_ensemble(stores, labels, spec["num_classes"], spec["ignore_label"], seeds=spec["seeds"],
                                     **settings)
    train_seconds = time.perf_counter() - start
    batches = history[-1]["batches"]
    # in the timed runs no member stops, so every member steps on every batch
    member_pixels = batches * 64 * spec["n_members"] * len(spec["seeds"]) if train["max_batches"] else None
    result = {"train_seconds": train_seconds, "peak_rss": int(peak_rss_mb() * 2**20), "miou": [], "member_pixels": member_pixels}
    if spec["predict_test"]:
        test = open_stores(_store_paths(spec, work / "real_test"))
        size = labels.shape[-1]
        for majority, _, _ in predict_images(models, test, len(data["test_labels"]), size):
            result["miou"].append(mean_iou(majority, data["test_labels"], spec["num_classes"], spec["ignore_label"]))
    return result


STAGES = {"paper": stage_paper, "ours-extract": stage_ours_extract, "ours-train": stage_ours_train}


def run_stage(name: str, spec: dict, work: Path, tag: str) -> dict:
    """Runs one stage in a fresh Python process and returns what it wrote."""
    spec_path = work / f"{name}_{tag}.spec.json"
    spec = {**spec, "out": str(work / f"{name}_{tag}.out.json")}
    spec_path.write_text(json.dumps(spec))
    print(f"-- {name} {tag}", flush=True)
    subprocess.run([sys.executable, __file__, "--stage", name, "--spec", str(spec_path)], check=True)
    return json.loads(Path(spec["out"]).read_text())


# ---- the comparison of one size


def compare(size: str, args, work: Path) -> dict:
    settings = size_settings(size)
    work.mkdir(parents=True, exist_ok=True)
    image_size = settings["flags"]["image_size"]
    paper_images, ours_images = args.paper_images, args.ours_images
    n_extract = args.extract_images
    check_miou = args.miou_seeds > 0 and size != "paper"
    n_real = len(list_split(args.dataset, "train"))
    data = load_data(args.dataset, image_size, max(paper_images + ours_images + [n_real]),
                     args.test_images if check_miou else 0)
    np.savez(work / "data.npz", **{k: v for k, v in data.items() if isinstance(v, np.ndarray)})
    spec = dict(**settings, checkpoint=args.checkpoint if size == "default" else None, weight_seed=0,
                data=str(work / "data.npz"), work=str(work), num_classes=data["num_classes"],
                ignore_label=data["ignore_label"], n_members=args.members, n_sample_pixels=args.sample_pixels,
                buffer_mb=args.buffer_mb, cache_mb=args.cache_mb)
    # timed runs: one ensemble, a fixed number of batches per member, the stop rule never reached
    timed = dict(spec, seeds=[0], predict_test=False, n_extract=n_extract,
                 train=dict(max_epochs=100, early_stop_epoch=100, patience=50, max_batches=args.train_batches))
    flops = flops_per_image(settings)
    print(f"\n== {size}: {image_size}x{image_size}, blocks {settings['blocks']}, t {settings['timesteps']}", flush=True)
    paper = {n: run_stage("paper", {**timed, "n_train": n, "sample_out": str(work / f"paper_sample_{n}.npy")},
                          work, f"n{n}") for n in paper_images}
    extract = run_stage("ours-extract", {**timed, "n_train_stores": max(ours_images), "predict_test": check_miou,
                                         "n_real": n_real, "sample_out": str(work / "ours_sample.npy")}, work, "all")
    ours = {n: run_stage("ours-train", {**timed, "n_train": n, "train_stores": "train"}, work, f"n{n}")
            for n in ours_images}
    equality = feature_equality(np.load(work / f"paper_sample_{max(paper_images)}.npy"), np.load(work / "ours_sample.npy"))
    result = dict(size=size, image_size=image_size, flops=flops, paper=paper, extract=extract, ours=ours,
                  equality=equality, n_extract=n_extract)
    if check_miou:  # all real train images, several seeds, trained to the paper's stop rule, scored on test
        full = dict(spec, seeds=list(range(args.miou_seeds)), predict_test=True, n_train=n_real, n_extract=n_real,
                    train=dict(max_epochs=100, early_stop_epoch=4, patience=50, max_batches=None))
        result["miou"] = {
            "train_images": n_real, "test_images": args.test_images, "seeds": full["seeds"],
            "paper": run_stage("paper", {**full, "sample_out": str(work / "paper_sample_miou.npy")}, work, "miou")["miou"],
            "ours": run_stage("ours-train", {**full, "train_stores": "real_train"}, work, "miou")["miou"],
        }
    return result


def feature_equality(paper: np.ndarray, ours: np.ndarray) -> dict:
    """Max abs difference per channel against float16 rounding of that channel's largest value.

    paper, ours: (images, pixels, D) float32 at the same pixels. Storing in float16 moves a
    value by at most 2^-11 of its magnitude, and bilinear weights are convex, so a channel may
    differ by at most 2^-11 x its largest magnitude (2x margin for values between samples).
    """
    n = min(len(paper), len(ours))
    paper, ours = paper[:n], ours[:n]
    difference = np.abs(paper - ours).max(axis=(0, 1))
    bound = 2 * FLOAT16_ROUNDING * np.abs(paper).max(axis=(0, 1)) + 1e-6
    return {"max_abs_difference": float(difference.max()), "max_abs_value": float(np.abs(paper).max()),
            "worst_ratio_to_bound": float((difference / bound).max()), "within_float16": bool((difference <= bound).all()),
            "images": n, "pixels": paper.shape[1], "channels": paper.shape[2]}


# ---- printing


def report(result: dict, quiet: bool = False) -> list:
    """Prints the comparison of one size (unless quiet); returns its lines."""
    lines = []

    def say(text=""):
        lines.append(text)
        if not quiet:
            print(text, flush=True)

    paper, ours, extract, flops = result["paper"], result["ours"], result["extract"], result["flops"]
    size, dim = result["image_size"], extract["dim"]
    paper_bytes = dim * size * size * 4
    n_paper = max(paper)
    say(f"\n{result['size']} model, {size}x{size}, {dim} features a pixel; training images beyond "
        f"{result['n_extract']} repeat the extracted ones' features")
    say(f"{'':34}{'paper path':>16}{'ours':>16}{'ours/paper':>12}")
    pe, oe = paper[n_paper]["extract_seconds_per_image"], extract["extract_seconds_per_image"]
    say(f"{'extraction s/image':34}{_num(pe):>16}{_num(oe):>16}{_ratio(oe, pe):>12}")
    say(f"{'FLOPs/image (T)':34}{flops['paper'] / 1e12:>16.3f}{flops['ours'] / 1e12:>16.3f}"
        f"{_ratio(flops['ours'], flops['paper']):>12}")
    say(f"{'cached features MB/image':34}{paper_bytes / 1e6:>16.1f}{extract['native_bytes_per_image'] / 1e6:>16.2f}"
        f"{_ratio(extract['native_bytes_per_image'], paper_bytes):>12}   (1/{paper_bytes / extract['native_bytes_per_image']:.1f})")
    say(f"{'  on disk (zstd) MB/image':34}{'':>16}{extract['stored_bytes_per_image'] / 1e6:>16.2f}"
        f"{_ratio(extract['stored_bytes_per_image'], paper_bytes):>12}")
    pt = paper[n_paper]["member_pixels"] / paper[n_paper]["train_seconds"]
    ot = ours[n_paper]["member_pixels"] / ours[n_paper]["train_seconds"] if n_paper in ours else None
    say(f"{f'training member-pixels/s ({n_paper} img)':34}{pt:>16.0f}{_num(ot, '.0f'):>16}{_ratio(ot, pt):>12}")
    say("ensemble-training peak RSS (GB), by training images:")
    for n in sorted(set(paper) | set(ours)):
        if n in paper:
            paper_rss, mark = paper[n]["peak_rss"], "measured"
        else:
            paper_rss, mark = paper[n_paper]["peak_rss"] + 2 * (n - n_paper) * paper_bytes, "COMPUTED"
        ours_rss = ours[n]["peak_rss"] if n in ours else None
        say(f"  {n:>3} images{'':21}{paper_rss / GB:>10.2f} {mark:<8}{_num(ours_rss and ours_rss / GB):>13}"
            f"{_ratio(ours_rss, paper_rss):>12}")
    if max(ours) > n_paper:
        say(f"  (COMPUTED: the measured {n_paper}-image RSS plus {paper_bytes / GB:.2f} GB x 2 for each further image: "
            "its rows in the matrix and in the reshape copy)")
    say("  ours, member-pixels/s by images: " + ", ".join(
        f"{n}: {o['member_pixels'] / o['train_seconds']:.0f}" for n, o in sorted(ours.items())))
    exact = result["paper"][max(result["paper"])]["exact"]
    say(f"activations before storage, paper's extractor vs ours, one image, batch 1: "
        f"{'bit-identical' if exact['bit_identical'] else 'DIFFERENT'} over {exact['maps']} maps "
        f"(max |diff| {exact['max_abs_difference']:.3g})")
    eq = result["equality"]
    say(f"features, paper vs ours at {eq['pixels']} pixels of {eq['images']} image(s): max |diff| "
        f"{eq['max_abs_difference']:.3g} (values up to {eq['max_abs_value']:.3g}); worst channel at "
        f"{eq['worst_ratio_to_bound']:.2f} of its float16 bound: {'PASS' if eq['within_float16'] else 'FAIL'}")
    if "miou" in result:
        miou = result["miou"]
        pm, om = np.array(miou["paper"]) * 100, np.array(miou["ours"]) * 100
        noise = 2 * np.sqrt((pm.var(ddof=1) + om.var(ddof=1)) / len(pm)) if len(pm) > 1 else float("nan")
        say(f"test mIoU, seeds {miou['seeds']}, {miou['train_images']} train / {miou['test_images']} test images, "
            f"trained to the stop rule: paper {pm.mean():.1f} ± {pm.std(ddof=1):.1f}, ours {om.mean():.1f} ± "
            f"{om.std(ddof=1):.1f}; difference {om.mean() - pm.mean():+.1f}, within 2 standard errors "
            f"({noise:.1f}): {'yes' if abs(pm.mean() - om.mean()) <= noise else 'NO'}")
    return lines


def _int_keys(result: dict) -> dict:
    """A result read back from JSON, with the image counts as int keys again."""
    return {**result, **{k: {int(n): v for n, v in result[k].items()} for k in ("paper", "ours")}}


def _num(value, fmt=".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(ours, paper) -> str:
    return "-" if ours is None or paper is None else f"{ours / paper:.3f}x"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["paper", "default", "both", "smoke"], default="both")
    parser.add_argument("--dataset", default=str(REPOSITORY.parent / "shared" / "datasets" / "fasseg_face6"))
    parser.add_argument("--work", help="folder for stores and results (default: a temporary one)")
    parser.add_argument("--checkpoint", help="weights of the default-size model (default: random)")
    parser.add_argument("--paper-images", type=_int_list, help="training images of the paper-path runs")
    parser.add_argument("--ours-images", type=_int_list, help="training images of our training runs")
    parser.add_argument("--extract-images", type=int,
                        help="images actually extracted, the rest repeat (default: 2 at 256x256, 20 for the small model)")
    parser.add_argument("--train-batches", type=int, default=600, help="batches per member in the timed runs")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--miou-seeds", type=int, default=5, help="seeds of the mIoU check (default size; 0: none)")
    parser.add_argument("--test-images", type=int, default=20)
    ensemble = yaml.safe_load((REPOSITORY / "config" / "paper.yaml").read_text())["_paper"]["ensemble"]
    parser.add_argument("--buffer-mb", type=float, default=ensemble["buffer_mb"], help="default: config/paper.yaml's")
    parser.add_argument("--cache-mb", type=float, default=ensemble["cache_mb"], help="default: config/paper.yaml's")
    parser.add_argument("--sample-pixels", type=int, default=2048)
    parser.add_argument("--report", action="store_true", help="print the report of <work>/results.json again")
    parser.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _int_list(text: str) -> list:
    return [int(v) for v in text.split(",")]


DEFAULT_IMAGES = {  # size: (paper_images, ours_images, extract_images)
    "paper": ([1, 2], [2, 5, 10, 20, 40], 2),
    "default": ([2, 5, 10, 20, 40], [2, 5, 10, 20, 40], 20),
    "smoke": ([2, 3], [2, 3], 2),
}


def main(argv=None):
    args = parse_args(argv)
    if args.stage:
        spec = json.loads(Path(args.spec).read_text())
        result = STAGES[args.stage](spec)
        Path(spec["out"]).write_text(json.dumps(result))
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ddpmseg-bench-"))
    if args.report:
        for result in json.loads((work / "results.json").read_text()).values():
            report(_int_keys(result))
        return
    sizes = ["paper", "default"] if args.size == "both" else [args.size]
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}  # other sizes run before
    for size in sizes:
        paper_default, ours_default, extract_default = DEFAULT_IMAGES[size]
        size_args = argparse.Namespace(**{**vars(args), "paper_images": args.paper_images or paper_default,
                                          "ours_images": args.ours_images or ours_default,
                                          "extract_images": args.extract_images or extract_default})
        results[size] = compare(size, size_args, work / size)
        results_path.write_text(json.dumps(results, indent=1))
        report(_int_keys(json.loads(json.dumps(results[size]))))
    lines = [line for result in results.values() for line in report(_int_keys(result), quiet=True)]
    (work / "report.txt").write_text("\n".join(lines) + "\n")
    print(f"\nresults: {results_path}, {work / 'report.txt'}")


if __name__ == "__main__":
    main()
