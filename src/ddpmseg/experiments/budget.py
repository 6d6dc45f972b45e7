"""How much diffusion training the features need: the followed method's mIoU at snapshots of
one diffusion training run, against the other methods (their Table 2 runs)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def budget_summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per (method, steps): mean and std (ddof=0) of mIoU in percent over the runs, and the
    snapshot's wall time in minutes; steps and minutes empty for the horizontal lines. long:
    method, steps (NaN for a line), minutes, seed, miou."""
    key = long["steps"].fillna(-1)
    summary = long.assign(steps_key=key).groupby(["method", "steps_key"], sort=False).agg(
        steps=("steps", "first"), minutes=("minutes", "first"), mean=("miou", "mean"),
        std=("miou", lambda s: s.std(ddof=0)), runs=("miou", "size")).reset_index().drop(columns="steps_key")
    summary[["mean", "std"]] *= 100
    summary["steps"] = summary["steps"].astype("Int64")
    return summary.round({"mean": 2, "std": 2, "minutes": 2})


def first_clear_lead(summary: pd.DataFrame, followed: str):
    """The first snapshot step at which the followed method's mean minus its std exceeds every
    line's mean plus its std (a lead larger than both spreads), or None."""
    curve = summary[summary["method"] == followed].sort_values("steps")
    lines = summary[summary["steps"].isna()]
    best = (lines["mean"] + lines["std"]).max() if len(lines) else -np.inf
    ahead = curve[curve["mean"] - curve["std"] > best]
    return None if ahead.empty else int(ahead["steps"].iloc[0])


def budget_figure(summary: pd.DataFrame, followed: str, table2_steps: int, title: str, path) -> None:
    """mIoU against training steps (log x, the wall time on a top axis), the followed method as
    a line with its ± std band, every other method a horizontal line with its band."""
    curve = summary[summary["method"] == followed].sort_values("steps")
    lines = summary[summary["steps"].isna()]
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    ax.plot(curve["steps"], curve["mean"], marker="o", color="C0", label=followed, zorder=3)
    ax.fill_between(curve["steps"], curve["mean"] - curve["std"], curve["mean"] + curve["std"], color="C0", alpha=0.2)
    for k, row in enumerate(lines.itertuples(), start=1):
        ax.axhline(row.mean, color=f"C{k}", lw=1.2, ls="--", label=f"{row.method} (Table 2)")
        ax.axhspan(row.mean - row.std, row.mean + row.std, color=f"C{k}", alpha=0.08)
    ax.axvline(table2_steps, color="grey", ls=":", lw=1)
    ax.annotate(f"Table 2: {table2_steps} steps", (table2_steps, 0.02), xycoords=("data", "axes fraction"),
                fontsize=8, color="grey", rotation=90, ha="right", va="bottom")
    ax.set_xscale("log")
    ax.set_xticks(curve["steps"], [str(int(s)) for s in curve["steps"]])
    ax.minorticks_off()
    ax.set_xlabel("diffusion training steps (one run, EMA snapshots)")
    ax.set_ylabel("mIoU on the test split (%)")
    top = ax.secondary_xaxis("top")
    top.set_xticks(curve["steps"], [f"{m:.0f}" if m >= 10 else f"{m:.1f}" for m in curve["minutes"]])
    top.minorticks_off()
    top.set_xlabel("wall time of the training (minutes)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
