"""Arithmetic precision of the CPU work: float32 (the default) or bfloat16 where the CPU has it.

Settings `features.precision` (the UNet forward of extraction, under torch.autocast) and
`ensemble.precision` (the matrix products of the MLP ensemble: training, prediction) take
"float32", "bf16" or "auto": bf16 only on a CPU with native bfloat16 arithmetic (the
`avx512_bf16` or `amx_bf16` flag of /proc/cpuinfo), float32 elsewhere. "auto" makes the numbers
depend on the machine, so it is never the default; the precision a job used is recorded beside
its outputs. On a GPU both stay as they are: the ADM runs in its flags' fp16, the ensemble in
float32. bf16 on a CPU without it is emulated: correct, but slower than float32.
"""

from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

PRECISIONS = ("float32", "bf16", "auto")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU lists avx512_bf16 or amx_bf16 (Linux /proc/cpuinfo; False where unreadable)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def resolve(setting: str, device: str) -> str:
    """"float32" or "bf16": what `setting` (one of PRECISIONS) means for work on `device`."""
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; use one of {', '.join(PRECISIONS)}")
    if not str(device).startswith("cpu") or setting == "float32":
        return "float32"
    if setting == "auto":
        return "bf16" if cpu_has_native_bf16() else "float32"
    return "bf16"


def matmul_dtype(precision: str):
    """The torch dtype of the matrix products of a resolved precision."""
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float32


def cpu_autocast(precision: str):
    """A context that runs a CPU forward pass in bfloat16 under torch.autocast (bf16), or does nothing."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
