"""What every training loop of the workflow records: the loss curve, the time guard and the
outcome (the diffusion model's, and the pretraining of the other sources)."""

import logging
import math
import time

import numpy as np
import torch


class TrainingRecord:
    """Loss rows every `log_every` steps, the `max_minutes` guard (None: no limit) and the outcome
    of a loop of `max_steps` optimiser steps; `what` names the training in messages ("MAE
    pretraining"), `fix` says what to lower when the loss is not finite ("train.lr")."""

    def __init__(self, what: str, fix: str, max_steps: int, max_minutes, log_every: int, seed: int,
                 log: logging.Logger):
        self.what, self.fix, self.log = what, fix, log
        self.max_steps, self.max_minutes, self.log_every, self.seed = max_steps, max_minutes, log_every, seed
        self.rows, self.window, self.steps = [], [], 0
        self.start = time.monotonic()

    def step(self, step: int, loss: float) -> bool:
        """Records optimiser step `step` (1-based) and its loss; True when the time guard stops the
        loop after it. A loss that is not finite raises RuntimeError."""
        if not math.isfinite(loss):
            raise RuntimeError(f"{self.what} diverged at step {step} (the loss is {loss}); lower {self.fix}")
        self.steps = step
        self.window.append(loss)
        elapsed = time.monotonic() - self.start
        out_of_time = self.max_minutes is not None and elapsed > 60.0 * self.max_minutes
        if step % self.log_every == 0 or step == self.max_steps or out_of_time:
            mean_loss = float(np.mean(self.window))
            self.rows.append(dict(step=step, seconds=round(elapsed, 2), loss=mean_loss))
            self.log.info("step %d  %.1f s  loss %.4f", step, elapsed, mean_loss)
            self.window = []
        if out_of_time:
            self.log.warning("STOPPED BY THE TIME BUDGET: max_minutes %g reached after %d of %d steps; the weights "
                             "depend on this machine's speed (raise or remove train.max_minutes)",
                             self.max_minutes, step, self.max_steps)
        return out_of_time

    def outcome(self) -> dict:
        """{steps, max_steps, max_minutes, stopped_by: "max_steps" | "max_minutes", seconds, seed, torch_threads}."""
        return dict(steps=self.steps, max_steps=self.max_steps, max_minutes=self.max_minutes,
                    stopped_by="max_minutes" if self.steps < self.max_steps else "max_steps",
                    seconds=round(time.monotonic() - self.start, 1), seed=self.seed,
                    torch_threads=torch.get_num_threads())
