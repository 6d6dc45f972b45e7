"""What a source is fed: images as model input, and the noise of sources that take diffusion steps.

Sources that take diffusion steps get the paper's shared noise by default: one tensor of shape
(1, 3, S, S) drawn from a generator seeded with `noise_seed` on `noise_device` (the paper's
code draws it on the run's device: a CUDA generator on a GPU), shared by every timestep and
image. Table 5's variants (`NOISE_MODES`) draw one tensor per timestep, or one per (image,
timestep), each from a generator seeded with a hash of (noise_seed, t) or (noise_seed, image
index, t): the same for an image whatever the batching or the other timesteps extracted.
"""

import numpy as np
import torch

from ddpmseg.errors import UserError

NORMALISATIONS = ("[-1, 1]", "[0, 1]", "imagenet")  # what a source's NORMALISATION may say
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


def _channels_first(images) -> torch.Tensor:
    """(N, S, S, 3) uint8 array or tensor -> (N, 3, S, S) float32, contiguous (channels-first in
    memory, as torchvision's ToTensor gives the paper's code: a channels-last view would make
    the convolutions pick other kernels and other roundings)."""
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    return x.permute(0, 3, 1, 2).contiguous().float()


def images_to_model_input(images) -> torch.Tensor:
    """(N, S, S, 3) uint8 (array or tensor) -> (N, 3, S, S) float32 in [-1, 1], contiguous.
    u / 127.5 - 1 equals the paper's 2 * (u / 255) - 1 bit for bit for every uint8 u."""
    return _channels_first(images) / 127.5 - 1.0


def model_input(images, normalisation: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 (array, or tensor: the exported graph's input) -> (N, 3, S, S) float32,
    contiguous, as a source's NORMALISATION says: "[-1, 1]" (`images_to_model_input`), "[0, 1]"
    (u / 255: the source normalises the rest itself) or "imagenet" (u / 255, then minus the
    ImageNet mean and over its std per channel, as torchvision's ToTensor and Normalize)."""
    if normalisation == "[-1, 1]":
        return images_to_model_input(images)
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}")
    x = _channels_first(images) / 255.0
    if normalisation == "[0, 1]":
        return x
    return (x - IMAGENET_MEAN.view(1, 3, 1, 1)) / IMAGENET_STD.view(1, 3, 1, 1)


def shared_noise(image_size: int, seed: int, device: str = "cpu", shape=None) -> torch.Tensor:
    """The paper's `share_noise`: (1, 3, S, S) standard normal from a generator on `device`
    ('cpu' or 'cuda': their generators give different numbers from one seed) seeded with `seed`;
    (1, *shape) where `shape` (C, h, w) is given (a source's `noise_shape`, e.g. a latent's).
    Raises a UserError for 'cuda' where no GPU is visible."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"features.noise_device is {device!r}, but this job sees no GPU: run it on a GPU, or set "
                        "noise_device: cpu (other noise, so other features than the paper's GPU runs)")
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(1, *(shape or (3, image_size, image_size)), generator=generator, device=device)


NOISE_MODES = ("shared", "per_timestep", "per_image")


def _seeded_noise(image_size: int, entropy: list, device: str, shape=None) -> torch.Tensor:
    """(1, 3, S, S) (or (1, *shape)) standard normal from a generator on `device` seeded from `entropy` (ints)."""
    seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)
    return shared_noise(image_size, seed, device, shape)


def batch_noise(mode: str, image_size: int, seed: int, device: str, images, timesteps, shape=None) -> torch.Tensor:
    """The noise of one forward batch: `shared_noise` (1, 3, S, S) for mode "shared"; else
    (len(images) * len(timesteps), 3, S, S), image-major and timestep-minor, one tensor per
    timestep ("per_timestep", the same for every image) or per (image, timestep) ("per_image";
    images: the batch's indices in the split). `shape` (C, h, w) replaces (3, S, S)."""
    if mode == "shared":
        return shared_noise(image_size, seed, device, shape)
    if mode == "per_timestep":
        return torch.cat([_seeded_noise(image_size, [seed, t], device, shape) for _ in images for t in timesteps])
    if mode == "per_image":
        return torch.cat([_seeded_noise(image_size, [seed, int(i), t], device, shape) for i in images
                          for t in timesteps])
    raise ValueError(f"unknown noise mode {mode!r}; one of {NOISE_MODES}")
