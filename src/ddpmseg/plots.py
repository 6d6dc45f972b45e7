"""Figures a person opens: the training loss curves, the segmentation overview, and the probe
sweep's Figures 2-4 (mIoU by layer and timestep, small vs large classes, k-means clusters)."""

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from ddpmseg.palette import palette  # noqa: E402


def loss_curve_figure(losses, title: str, path, ylabel: str = "diffusion loss (MSE on noise)",
                      reference: tuple | None = None) -> None:
    """Training loss (mean over each logging interval) against optimiser step, log y;
    `reference` (loss, label) draws a dashed level with its label (e.g. a collapsed model's loss)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(losses["step"], losses["loss"], color="C0", marker=".", label="training loss")
    if reference is not None:
        ax.axhline(reference[0], color="0.4", linestyle="--", label=reference[1])
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
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


def _layer_label(row) -> str:
    return f"{row['layer']}  ({row['channels']}@{row['resolution']})"


def _probe_heatmap(ax, table, column: str, title: str, marked=()):
    """One heatmap of `column` (fractions) on ax: layers in forward order (ADM: deep decoder
    blocks on top) down, t across. Outlines the best cell (white) and the `marked` (layer,
    timestep) cells (dashed). Returns the image."""
    grid = table.pivot(index="depth", columns="timestep", values=column).sort_index()
    shown = ax.imshow(100 * grid.to_numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
    layers = table.drop_duplicates("depth").sort_values("depth")
    names, steps = list(layers["layer"]), [int(t) for t in grid.columns]
    ax.set_yticks(range(len(names)), [_layer_label(r) for _, r in layers.iterrows()], fontsize=7)
    ax.set_xticks(range(len(steps)), [str(t) for t in steps], fontsize=7, rotation=90)
    ax.set_xlabel("diffusion step t (more noise to the right)")
    ax.set_ylabel("layer (channels@res.)")
    best = table.loc[table[column].idxmax()]
    for (layer, step), style in [((best["layer"], best["timestep"]), dict(edgecolor="white", linewidth=2))] + [
        (cell, dict(edgecolor="red", linewidth=1, linestyle="--")) for cell in marked
    ]:
        if layer in names and step in steps:
            ax.add_patch(Rectangle((steps.index(step) - 0.5, names.index(layer) - 0.5), 1, 1, fill=False, **style))
    ax.set_title(f"{title}\nbest: {best['layer']}, t={int(best['timestep'])}: {100 * best[column]:.1f}%", fontsize=9)
    return shown


def _probe_bars(ax, table, column: str, title: str, marked=()) -> None:
    """Horizontal bars of `column` (fractions, shown in %) per layer of a source without
    timesteps, in forward order from the top; the best bar dark, the `marked` layers (the
    ensemble's) outlined in red."""
    rows = table.sort_values("depth")
    values = 100 * rows[column].to_numpy()
    best = int(np.nanargmax(values))
    chosen = {layer for layer, _ in marked}
    colours = ["C0" if i == best else "#9ecae1" for i in range(len(rows))]
    bars = ax.barh(range(len(rows)), values, color=colours)
    for bar, layer in zip(bars, rows["layer"]):
        if layer in chosen:
            bar.set_edgecolor("red")
            bar.set_linewidth(1.5)
            bar.set_linestyle("--")
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.1f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [_layer_label(r) for _, r in rows.iterrows()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, float(np.nanmax(values))) * 1.15)
    ax.set_xlabel(column.replace("miou", "mIoU").replace("_", " ") + " (%)")
    ax.set_title(f"{title}\nbest: {rows['layer'].iloc[best]}: {values[best]:.1f}%", fontsize=9)


def _has_timesteps(table) -> bool:
    return bool(table["timestep"].notna().any())


def probe_figure(table, title: str, path, marked=()) -> None:
    """Figure 2: mIoU (%) of a probe per (layer, diffusion step) as a heatmap with a colour bar,
    or per layer as bars for a source without timesteps; the best cell outlined in white (a dark
    bar), the ensemble's cells (`marked`) dashed red."""
    n_layers = table["depth"].nunique()
    if _has_timesteps(table):
        fig, ax = plt.subplots(figsize=(max(6.0, 2.4 + 0.32 * table["timestep"].nunique()), 2.0 + 0.3 * n_layers),
                               layout="constrained")
        shown = _probe_heatmap(ax, table, "miou", title, marked)
        fig.colorbar(shown, ax=ax, label="mIoU on the test images (%)")
    else:
        fig, ax = plt.subplots(figsize=(7.0, 1.6 + 0.32 * n_layers), layout="constrained")
        _probe_bars(ax, table, "miou", title, marked)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cell_weights_figure(table, title: str, path) -> None:
    """The learned mixing weights (`ddpmseg.aggregation`) in %: table rows (seed, member, layer,
    timestep, weight) -> mean over the members per cell, as a heatmap of layers (in the ensemble's
    order, down) by diffusion step (across) with mean and std written in each cell, or as bars
    with std whiskers for a source without timesteps. The uniform weight 1/K is in the title."""
    table = table.assign(weight=100 * table["weight"], timestep=table["timestep"].astype("Int64"))
    layers = list(dict.fromkeys(table["layer"]))
    stats = table.groupby(["layer", "timestep"], dropna=False, sort=False)["weight"].agg(["mean", "std"])
    n_cells = len(stats)
    title = "\n".join(textwrap.fill(line, 70) for line in title.splitlines()) + f"\nuniform: {100 / n_cells:.1f}% per cell"
    if table["timestep"].isna().all():
        fig, ax = plt.subplots(figsize=(7.0, 1.6 + 0.32 * len(layers)), layout="constrained")
        means = stats["mean"].to_numpy()
        ax.barh(range(len(layers)), means, xerr=stats["std"].fillna(0).to_numpy(), color="C0")
        ax.axvline(100 / n_cells, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("mixing weight (%)")
    else:
        steps = sorted(int(t) for t in table["timestep"].dropna().unique())
        grid = np.full((len(layers), len(steps)), np.nan)
        spread = np.full_like(grid, np.nan)
        for (layer, step), row in stats.iterrows():
            grid[layers.index(layer), steps.index(int(step))] = row["mean"]
            spread[layers.index(layer), steps.index(int(step))] = row["std"]
        fig, ax = plt.subplots(figsize=(max(5.0, 2.6 + 0.9 * len(steps)), 1.8 + 0.45 * len(layers)),
                               layout="constrained")
        shown = ax.imshow(grid, cmap="viridis", aspect="auto", interpolation="nearest")
        for i, j in zip(*np.nonzero(np.isfinite(grid))):
            light = grid[i, j] < np.nanmin(grid) + 0.6 * (np.nanmax(grid) - np.nanmin(grid))
            ax.text(j, i, f"{grid[i, j]:.1f}\n±{np.nan_to_num(spread[i, j]):.1f}", ha="center", va="center",
                    fontsize=7, color="white" if light else "black")
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xticks(range(len(steps)), [str(t) for t in steps], fontsize=7)
        ax.set_xlabel("diffusion step t (more noise to the right)")
        ax.set_ylabel("layer")
        fig.colorbar(shown, ax=ax, label="mixing weight (%)")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def small_large_figure(table, split: dict, classes, title: str, path) -> None:
    """Figure 3: the probe mIoU (%) over the small classes and over the large ones, side by
    side (heatmaps with colour bars, or bars per layer); the caption states the split rule and
    names the classes."""
    n_layers = table["depth"].nunique()
    timesteps = _has_timesteps(table)
    width = max(5.0, 2.4 + 0.32 * table["timestep"].nunique()) if timesteps else 5.5
    fig, axes = plt.subplots(1, 2, figsize=(2 * width + 1.0, 3.0 + 0.3 * n_layers), layout="constrained")
    for ax, key in zip(axes, ("small", "large")):
        names = textwrap.fill(", ".join(classes[c] for c in split[key]), 70)
        if timesteps:
            shown = _probe_heatmap(ax, table, f"miou_{key}", f"{key} classes: {names}")
            fig.colorbar(shown, ax=ax, label=f"mIoU over the {key} classes (%)")
        else:
            _probe_bars(ax, table, f"miou_{key}", f"{key} classes: {names}")
    fig.suptitle(f"{title}\n{split['rule']}", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _kmeans_figure_without_timesteps(images, clusters: dict, shapes: dict, image_ids, title: str, path) -> None:
    """Figure 4 of a source without timesteps: one row per image, the image then one column per layer."""
    layers = list(dict.fromkeys(layer for layer, _ in clusters))
    fig, axes = plt.subplots(len(images), len(layers) + 1, figsize=(1.6 * (len(layers) + 1) + 0.6, 1.6 * len(images) + 1.0),
                             squeeze=False, layout="constrained")
    for i in range(len(images)):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_ylabel(str(image_ids[i]), fontsize=8)
        for c, layer in enumerate(layers, start=1):
            axes[i, c].imshow(clusters[layer, None][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
            if i == 0:
                channels, resolution = shapes[layer]
                axes[i, c].set_title(f"{layer}\n{channels}@{resolution}", fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    fig.suptitle(textwrap.fill(title, 90), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kmeans_figure(images, clusters: dict, shapes: dict, image_ids, title: str, path) -> None:
    """Figure 4: k-means cluster maps of the pixel features beside the input images.

    images (N, S, S, 3) uint8; clusters {(layer, timestep): (N, h, w) cluster ids at the
    layer's resolution}, layers in forward order (timestep None for a source without);
    shapes {layer: (channels, resolution)}. One row per (image, layer), one column per
    timestep, the input image in the first column; without timesteps one row per image and
    one column per layer.
    """
    if all(t is None for _, t in clusters):
        return _kmeans_figure_without_timesteps(images, clusters, shapes, image_ids, title, path)
    blocks = list(dict.fromkeys(b for b, _ in clusters))
    steps = sorted({t for _, t in clusters}, key=lambda t: -1 if t is None else t)
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
                axes[r, c].set_title("features" if t is None else f"t={t}", fontsize=9)
        channels, resolution = shapes[b]
        axes[r, 1].set_ylabel(f"{b}\n{channels}@{resolution}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pool_figure(images, labels, rows, classes, title: str, path) -> None:
    """A labelled pool at a glance: images over their labels, one column per image, from the
    most certain to the most uncertain; `rows` (image, js_top10, rank, kept) titles each column."""
    colours = palette(len(classes))
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.55 * n + 0.4, 3.9), squeeze=False, layout="constrained")
    for col, (image, label, row) in enumerate(zip(images, labels, rows.itertuples())):
        axes[0, col].imshow(image, interpolation="nearest")
        axes[1, col].imshow(colours[label], interpolation="nearest")
        axes[0, col].set_title(f"{row.image}\nrank {row.rank}, JS {row.js_top10:.3f}\n"
                               f"{'kept' if row.kept else 'DROPPED'}", fontsize=7, color="black" if row.kept else "C3")
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("ensemble's labels", fontsize=8)
    legend = [Patch(color=colours[c] / 255, label=name) for c, name in enumerate(classes)]
    fig.legend(handles=legend, loc="outside lower center", ncol=min(len(legend), 6), fontsize=7, frameon=False)
    fig.suptitle(f"{title}\n(JS: mean of the top 10% per-pixel Jensen-Shannon values, nats)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability_figure(table, title: str, path) -> None:
    """Left: accuracy against confidence per method (`tables.reliability_table`), bins with
    pixels only, the diagonal where confidence is accuracy; right: the share of pixels per
    confidence bin (log scale), so that a bin's weight in the ECE can be read off."""
    fig, (curve, share) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    curve.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    for k, (method, rows) in enumerate(table.groupby("method", sort=False)):
        filled = rows[rows["count"] > 0]
        label = f"{method} (ECE {100 * rows['ece'].iloc[0]:.1f}%)"
        curve.plot(filled["confidence"], filled["accuracy"], marker="o", markersize=4, color=f"C{k}", label=label)
        centres = (filled["lower"] + filled["upper"]) / 2  # empty bins left out (no log of 0)
        share.plot(centres, filled["count"] / max(rows["count"].sum(), 1), marker=".", color=f"C{k}", label=method)
    curve.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (soft vote's largest mean probability)",
              ylabel="accuracy of the soft vote", title="reliability")
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8, loc="upper left")
    share.set(xlim=(0, 1), yscale="log", xlabel="confidence bin", ylabel="share of labelled pixels",
              title="where the pixels are")
    share.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def labelling_overlay(image, mask, uncertainty, classes, ignore_label: int, title: str, path,
                      uncertainty_name: str = "Jensen-Shannon divergence (nats)") -> None:
    """What an annotator looks at before correcting a pre-annotation: the photo | the predicted
    mask over it (half transparent, class legend) | the pixel uncertainty. image (H, W, 3) uint8,
    mask (H, W) class ids, uncertainty (H, W) in nats (`uncertainty_name` says which: an
    ensemble's Jensen-Shannon divergence, a DeepLab's entropy), all at the photo's own size."""
    colours = palette(len(classes))
    height, width = mask.shape
    panel_width = 3.2 * min(width / height, 2.0)
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel_width + 0.8, 3.2 + 1.0), layout="constrained")
    axes[0].imshow(image)
    blended = (0.5 * image + 0.5 * colours[mask]).astype(np.uint8)
    axes[1].imshow(blended, interpolation="nearest")
    shown = axes[2].imshow(uncertainty, cmap="magma", vmin=0, vmax=max(float(uncertainty.max()), 1e-6),
                           interpolation="nearest")
    for ax, name in zip(axes, ["image", "prediction", "uncertainty (where to look first)"]):
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[2], shrink=0.8, label=uncertainty_name)
    present = [c for c in np.unique(mask) if c != ignore_label and c < len(classes)]
    legend = [Patch(color=colours[c] / 255, label=classes[c]) for c in present]
    fig.legend(handles=legend, loc="outside lower center", ncol=min(len(legend), 6) or 1, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def region_overlay(image, guess, asked_regions, classes, ignore_label: int, title: str, path) -> None:
    """What an annotator of a region batch looks at: the photo | the asked regions outlined on it,
    each filled (half transparent) with the ensemble's guess, the rest dimmed. image (H, W, 3)
    uint8, guess (H, W) class ids, asked_regions (H, W) int (-1 where not asked, else the
    region's id), all at the photo's own size."""
    colours = palette(len(classes))
    height, width = guess.shape
    asked = asked_regions >= 0
    panel_width = 3.6 * min(width / height, 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * panel_width + 0.6, 3.6 + 1.0), layout="constrained")
    axes[0].imshow(image)
    grey = image.astype(np.float32).mean(axis=-1, keepdims=True)
    shown = np.repeat(0.3 * grey, 3, axis=-1)  # the rest greyed and dimmed
    coloured = np.clip(guess, 0, len(colours) - 1)
    shown[asked] = 0.55 * image[asked] + 0.45 * colours[coloured[asked]]
    axes[1].imshow(shown.astype(np.uint8), interpolation="nearest")
    rows, cols = np.arange(-1, height + 1), np.arange(-1, width + 1)
    for region in np.unique(asked_regions[asked]):  # each region's outline, closed along the image's edge too
        inside = np.pad((asked_regions == region).astype(float), 1)
        axes[1].contour(cols, rows, inside, levels=[0.5], colors="white", linewidths=1.2)
    axes[1].set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5))
    count = len(np.unique(asked_regions[asked]))
    for ax, name in zip(axes, ["image", f"label {'this region' if count == 1 else f'these {count} regions'} "
                                        "(the guess in colour)"]):
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    present = [c for c in np.unique(guess[asked]) if c != ignore_label and c < len(classes)]
    legend = [Patch(color=colours[c] / 255, label=classes[c]) for c in present]
    fig.legend(handles=legend, loc="outside lower center", ncol=min(len(legend), 6) or 1, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
