"""Figures a person opens: the diffusion loss curve and the segmentation overview."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ddpmseg.evaluate import palette  # noqa: E402


def loss_curve_figure(losses, title: str, path) -> None:
    """Training loss against step (raw per-interval mean and its running smoothing), log y."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(losses["step"], losses["loss"], color="0.7", label="mean over interval")
    ax.plot(losses["step"], losses["loss_smoothed"], color="C0", label="smoothed")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("diffusion loss (MSE on noise)")
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overview_figure(images, predictions, labels, uncertainty, image_ids, classes, ignore_label, title, path) -> None:
    """image | prediction | ground truth | uncertainty, one row per image, with a class legend."""
    colours = palette(len(classes))
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(9, 2.3 * n + 0.9), squeeze=False)
    vmax = max(float(np.max(uncertainty)), 1e-6)
    for row in range(n):
        panels = [images[row], colours[predictions[row]], colours[labels[row]]]
        for col, panel in enumerate(panels):
            axes[row, col].imshow(panel, interpolation="nearest")
        shown = axes[row, 3].imshow(uncertainty[row], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[row, 0].set_ylabel(str(image_ids[row]), fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for col, name in enumerate(["image", "prediction", "ground truth", "uncertainty (JS, nats)"]):
        axes[0, col].set_title(name, fontsize=9)
    fig.colorbar(shown, ax=axes[:, 3], fraction=0.05, shrink=0.8)
    legend = [Patch(color=colours[c] / 255, label=name) for c, name in enumerate(classes) if c != ignore_label]
    legend.append(Patch(facecolor="white", edgecolor="grey", label="ignore"))
    fig.legend(handles=legend, loc="lower center", ncol=min(len(legend), 6), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.9 / (2.3 * n + 0.9) + 0.04, top=1 - 0.5 / (2.3 * n + 0.9), wspace=0.05, hspace=0.08)
    fig.savefig(path, dpi=110)
    plt.close(fig)
