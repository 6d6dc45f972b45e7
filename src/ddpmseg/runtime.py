"""What every rule script does first: log to the rule's log file, set threads, pick a device."""

import logging
import os
import sys

import torch


def start_rule(snakemake) -> logging.Logger:
    """Sends stderr and `logging` to snakemake.log[0], sets torch's thread count to the rule's
    threads (at most the CPUs this process may use: `--cores` can exceed them), and logs the
    device that torch will use. Returns the script's logger."""
    log_file = open(snakemake.log[0], "w", buffering=1)
    sys.stderr = log_file
    logging.basicConfig(
        stream=log_file, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    torch.set_num_threads(max(1, min(int(snakemake.threads), len(os.sched_getaffinity(0)))))
    logger = logging.getLogger(f"ddpmseg.rules.{snakemake.rule}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("rule %s, wildcards %s, %d torch threads, device %s",
        snakemake.rule, dict(snakemake.wildcards), torch.get_num_threads(), device,
    )
    return logger
