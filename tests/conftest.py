"""Shared fixtures: small real data from the embedded generator, and a tiny ADM UNet."""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    # Two workers share the cores: OpenMP threads that wait at a barrier sleep instead of
    # spinning on a core the other worker's threads need (it changes timing, not numbers). Set
    # before torch loads OpenMP; the workflow runs the tests start inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ddpmseg.synthetic import render_sample
from label_studio_server import shared_server, stop_shared_server

TINY_FLAGS = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2",
    attention_resolutions="16",
    num_heads=2,
    learn_sigma=False,
    diffusion_steps=100,
)


def apt_install(packages: list, tools: tuple) -> None:
    """Installs Debian's ``packages`` where one of the commands ``tools`` is missing (as root, with
    apt-get; `apt-get update` where the first try fails); skips the test where that cannot be done."""
    if all(shutil.which(tool) for tool in tools):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{', '.join(tools)} not installed, and installing them (apt-get install {' '.join(packages)}) "
                    "needs root and apt-get")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:  # stale package lists
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(install)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def heavy_modules_imported(code: str, modules) -> list:
    """Which of `modules` a fresh Python has imported after running `code` (sorted)."""
    script = f"{code}\nimport sys; print(sorted(set({sorted(modules)!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def pytest_collection_modifyitems(items):
    """The whole-workflow runs first (`slow`, then `slurm`), the rest in file order: with `-n 2
    --dist worksteal` (the README's test command) one worker starts on the longest run while the
    other takes the short tests, and steals what is left of the first one's queue."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("slurm") else 2)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: the test machine's two cores are shared, where two threads spin-wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def creatures32():
    """12 rendered creatures at 32x32: images (12, 32, 32, 3) uint8, labels (12, 32, 32) uint8."""
    rng = np.random.default_rng(123)
    samples = [render_sample(rng, 32) for _ in range(12)]
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


@pytest.fixture(scope="session")
def tiny_model():
    """(model, diffusion) of a tiny random ADM UNet (4 decoder blocks), fp32 on CPU."""
    import torch

    from ddpmseg.diffusion import build_model_and_diffusion, randomize_weights

    model, diffusion = build_model_and_diffusion(TINY_FLAGS)
    randomize_weights(model, seed=0)
    torch.manual_seed(0)
    return model, diffusion


def adm_stores(model, diffusion, images, out_dir, blocks, timesteps, flags=TINY_FLAGS, **options):
    """The ADM source's stores of `blocks` (ints) at `timesteps` for a (model, diffusion) pair
    (`features.extract_features`); returns their paths, block-major. `options`: noise_seed,
    noise_device, batch_images."""
    from ddpmseg.backbones import adm
    from ddpmseg.features import extract_features

    table = adm.layer_table({"flags": flags}, images.shape[1])
    return extract_features("adm", adm.adm_parts(model, diffusion, flags), images, list(range(len(images))),
                            [adm.layer_name(b) for b in blocks], timesteps, table, out_dir, {}, **options)


def control_store(images, kind, out_dir):
    """The store of control `kind` ('pixels' or 'patch') of `images`, written under out_dir."""
    from ddpmseg import backbones
    from ddpmseg.features import extract_features
    from ddpmseg.stores import open_store

    table = backbones.source(kind).layer_table({}, images.shape[1])
    [path] = extract_features(kind, None, images, list(range(len(images))), [kind], None, table, out_dir, {})
    return open_store(path)


def tiny_sd_pipeline(folder):
    """A Stable Diffusion pipeline folder of tiny random parts: unet/, vae/ (factor 2),
    text_encoder/, tokenizer/ (a letters-only CLIP vocabulary), scheduler/ (SD's schedule)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                         attention_head_dim=2, norm_num_groups=4).save_pretrained(folder / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                  norm_num_groups=4, sample_size=16).save_pretrained(folder / "vae")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {token: i for i, token in enumerate([*letters, *(c + "</w>" for c in letters), "<|startoftext|>",
                                                 "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8).save_pretrained(
        folder / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=8, bos_token_id=52,
                                 eos_token_id=53, pad_token_id=53)).save_pretrained(folder / "text_encoder")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


@pytest.fixture(scope="session")
def sd_pipeline(tmp_path_factory):
    """The folder of `tiny_sd_pipeline` (16x16 images give 8x8 latents)."""
    return tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory):
    """A real Label Studio server (`label_studio_server.LabelStudioServer`), one for all xdist
    workers of the run: they share the parent of their basetemps, the controller's basetemp."""
    basetemp = tmp_path_factory.getbasetemp()
    return shared_server(basetemp.parent if "PYTEST_XDIST_WORKER" in os.environ else basetemp)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session):
    """The controller (or a run without xdist) stops the Label Studio server, after xdist has
    ended the workers (this wrapper's code after `yield` runs last), so none is its parent."""
    result = yield
    if not hasattr(session.config, "workerinput"):
        stop_shared_server(session.config._tmp_path_factory.getbasetemp())
    return result
