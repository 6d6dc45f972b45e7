"""Reading model checkpoints safely (tensors only), for every feature source."""

from pathlib import Path

import torch

from ddpmseg.errors import CheckpointError


def load_state_dict(path, setting: str = "diffusion.checkpoint") -> dict:
    """A checkpoint's tensors as a plain state_dict (fp16 or fp32; a `module.` prefix removed).

    The official layouts are unwrapped: a state_dict itself, or one under the key `state_dict`
    (SwAV, DataParallel) or `model` (MAE). Only tensors are loaded (torch's weights_only): a
    file that holds anything else, or is not a PyTorch file at all, raises CheckpointError
    naming it and saying to check its sha256; a missing file names `setting`, the config key
    that gives the path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found. Put the .pt/.pth file there or fix `{setting}` in the config.")
    fix = (f"Check its sha256 (sha256sum {path}) against the published one and fetch it again; do not load "
           "it with weights_only=False, which would run code from the file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ...: the file is not a safe checkpoint
        raise CheckpointError(f"{path}: not a PyTorch checkpoint of tensors ({type(exc).__name__}). {fix}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state_dict of tensors. {fix}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def first_shape_mismatch(expected: dict, state: dict):
    """(name, checkpoint shape or None, built shape or None) of the first tensor of `expected`
    (name -> tensor, e.g. a model's state_dict on the meta device) that `state` lacks or holds in
    another shape, then of the first tensor `state` has beyond `expected`; None when they agree."""
    for name, tensor in expected.items():
        if name not in state:
            return name, None, tuple(tensor.shape)
        if tuple(state[name].shape) != tuple(tensor.shape):
            return name, tuple(state[name].shape), tuple(tensor.shape)
    extra = sorted(set(state) - set(expected))
    return (extra[0], tuple(state[extra[0]].shape), None) if extra else None
