"""Figures a person opens: the diffusion loss curve, the segmentation overview, and the probe
sweep's Figures 2-4 (mIoU by block and timestep, small vs large classes, k-means clusters)."""

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from ddpmseg.evaluate import palette  # noqa: E402


def loss_curve_figure(losses, title: str, path) -> None:
    """Training loss (mean over each logging interval) against optimiser step, log y."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(losses["step"], losses["loss"], color="C0", marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("diffusion loss (MSE on noise)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overview_figure(images, predictions, labels, uncertainty, image_ids, classes, ignore_label, title, path) -> None:
    """image | prediction | ground truth | uncertainty, one row per image, with a class legend.

    images (N, S, S, 3) uint8; predictions and labels (N, S, S) class ids; uncertainty
    (N, S, S) Jensen-Shannon values in nats, drawn on one colour scale for all rows.
    """
    colours = palette(len(classes))
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(8.4, 2.1 * n + 1.0), squeeze=False, layout="constrained")
    vmax = max(float(np.max(uncertainty)), 1e-6)
    for row in range(n):
        for col, panel in enumerate([images[row], colours[predictions[row]], colours[labels[row]]]):
            axes[row, col].imshow(panel, interpolation="nearest")
        shown = axes[row, 3].imshow(uncertainty[row], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[row, 0].set_ylabel(str(image_ids[row]), fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for col, name in enumerate(["image", "prediction", "ground truth", "uncertainty"]):
        axes[0, col].set_title(name, fontsize=9)
    fig.colorbar(shown, ax=axes[:, 3], shrink=0.6, label="Jensen-Shannon divergence (nats)")
    legend = [Patch(color=colours[c] / 255, label=name) for c, name in enumerate(classes) if c != ignore_label]
    legend.append(Patch(facecolor="white", edgecolor="grey", label="ignore"))
    fig.legend(handles=legend, loc="outside lower center", ncol=min(len(legend), 6), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _probe_heatmap(ax, table, column: str, title: str, marked=()):
    """One heatmap of `column` (fractions) on ax: decoder blocks deep (top) to shallow, t across.
    Outlines the best cell (white) and the `marked` (block, timestep) cells (dashed). Returns the image."""
    grid = table.pivot(index="block", columns="timestep", values=column).sort_index()
    shown = ax.imshow(100 * grid.to_numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
    blocks, steps = list(grid.index), list(grid.columns)
    shapes = table.drop_duplicates("block").set_index("block")
    ax.set_yticks(range(len(blocks)), [f"{b}  ({shapes.loc[b, 'channels']}@{shapes.loc[b, 'resolution']})"
                                       for b in blocks], fontsize=7)
    ax.set_xticks(range(len(steps)), [str(t) for t in steps], fontsize=7, rotation=90)
    ax.set_xlabel("diffusion step t (more noise to the right)")
    ax.set_ylabel("decoder block (channels@res.), deep on top")
    best = table.loc[table[column].idxmax()]
    for (block, step), style in [((best["block"], best["timestep"]), dict(edgecolor="white", linewidth=2))] + [
        (cell, dict(edgecolor="red", linewidth=1, linestyle="--")) for cell in marked
    ]:
        if block in blocks and step in steps:
            ax.add_patch(Rectangle((steps.index(step) - 0.5, blocks.index(block) - 0.5), 1, 1, fill=False, **style))
    ax.set_title(f"{title}\nbest: block {int(best['block'])}, t={int(best['timestep'])}: "
                 f"{100 * best[column]:.1f}%", fontsize=9)
    return shown


def probe_figure(table, title: str, path, marked=()) -> None:
    """Figure 2: mIoU (%) of a probe per (decoder block, diffusion step), with a colour bar;
    the best cell outlined in white, the ensemble's cells (`marked`) dashed red."""
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 + 0.32 * table["timestep"].nunique()), 2.0 + 0.3 * table["block"].nunique()),
                           layout="constrained")
    shown = _probe_heatmap(ax, table, "miou", title, marked)
    fig.colorbar(shown, ax=ax, label="mIoU on the test images (%)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def small_large_figure(table, split: dict, classes, title: str, path) -> None:
    """Figure 3: the probe mIoU (%) over the small classes and over the large ones, side by
    side, each with its colour bar; the caption states the split rule and names the classes."""
    width = max(5.0, 2.4 + 0.32 * table["timestep"].nunique())
    fig, axes = plt.subplots(1, 2, figsize=(2 * width + 1.0, 3.0 + 0.3 * table["block"].nunique()),
                             layout="constrained")
    for ax, key in zip(axes, ("small", "large")):
        names = textwrap.fill(", ".join(classes[c] for c in split[key]), 70)
        shown = _probe_heatmap(ax, table, f"miou_{key}", f"{key} classes: {names}")
        fig.colorbar(shown, ax=ax, label=f"mIoU over the {key} classes (%)")
    fig.suptitle(f"{title}\n{split['rule']}", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def kmeans_figure(images, clusters: dict, shapes: dict, image_ids, title: str, path) -> None:
    """Figure 4: k-means cluster maps of the pixel features beside the input images.

    images (N, S, S, 3) uint8; clusters {(block, timestep): (N, h, w) cluster ids at the
    block's resolution}; shapes {block: (channels, resolution)}. One row per (image, block),
    one column per timestep, the input image in the first column.
    """
    blocks = sorted({b for b, _ in clusters})
    steps = sorted({t for _, t in clusters})
    rows = [(i, b) for i in range(len(images)) for b in blocks]
    fig, axes = plt.subplots(len(rows), len(steps) + 1, figsize=(1.5 * (len(steps) + 1) + 0.8, 1.5 * len(rows) + 0.8),
                             squeeze=False, layout="constrained")
    for r, (i, b) in enumerate(rows):
        axes[r, 0].imshow(images[i]) if b == blocks[0] else axes[r, 0].axis("off")
        if b == blocks[0]:
            axes[r, 0].set_title(str(image_ids[i]), fontsize=8)
        for c, t in enumerate(steps, start=1):
            axes[r, c].imshow(clusters[b, t][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(f"t={t}", fontsize=9)
        channels, resolution = shapes[b]
        axes[r, 1].set_ylabel(f"block {b}\n{channels}@{resolution}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
