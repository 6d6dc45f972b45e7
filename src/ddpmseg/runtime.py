"""What every rule script does first: log to the rule's log file, set threads, pick a device."""

import logging
import os
import sys

import torch

from ddpmseg.errors import UserError


def start_rule(snakemake) -> logging.Logger:
    """Sends stderr and `logging` to snakemake.log[0], sets torch's thread count to the rule's
    `torch_threads` param (1 where it has none), and logs it with the device torch will use.
    Returns the script's logger.

    The thread count comes from the config, never from `--cores` or the CPUs this process may
    use: torch splits reductions by thread, so it shapes the numbers. Snakemake's `threads:`
    of the rule (which `--cores` may scale down) only schedules the job."""
    log_file = open(snakemake.log[0], "w", buffering=1)
    sys.stderr = log_file
    logging.basicConfig(
        stream=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    torch.set_num_threads(int(snakemake.params.get("torch_threads", 1)))
    logger = logging.getLogger(f"ddpmseg.rules.{snakemake.rule}")
    sys.excepthook = _user_errors_first(logger, snakemake.log[0])
    device = pick_device()
    logger.info("rule %s, wildcards %s, %d torch threads (%d CPUs available, OMP_WAIT_POLICY=%s), device %s",
        snakemake.rule, dict(snakemake.wildcards), torch.get_num_threads(), len(os.sched_getaffinity(0)),
        os.environ.get("OMP_WAIT_POLICY", "unset"), device,
    )
    return logger


def pick_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _user_errors_first(logger: logging.Logger, log_path: str):
    """An excepthook: a UserError's message goes to the terminal (the real stderr) as the first
    thing the user reads, and to the log, without a traceback (the message says what to do);
    any other error's traceback goes to the log (which Snakemake shows: show-failed-logs)."""

    def hook(kind, error, traceback):
        if issubclass(kind, UserError):
            logger.error("%s", error)
            sys.__stderr__.write(f"\nERROR {error}\n(log: {log_path})\n\n")
            sys.__stderr__.flush()
        else:
            logger.error("stopped by a bug, not by the input: please report it", exc_info=(kind, error, traceback))

    return hook
