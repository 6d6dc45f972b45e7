"""What every rule script does first: log to the rule's log file, set threads, pick a device."""

import logging
import os
import sys

import torch


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
    device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("rule %s, wildcards %s, %d torch threads (%d CPUs available), device %s",
        snakemake.rule, dict(snakemake.wildcards), torch.get_num_threads(), len(os.sched_getaffinity(0)), device,
    )
    return logger
