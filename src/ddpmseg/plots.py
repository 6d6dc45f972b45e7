"""Figures a person opens: the diffusion loss curve and the segmentation overview."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

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
