"""The grid of the block/timestep probe sweep (the paper's Figures 2-4), known before any job runs.

Nothing here imports torch: the Snakefile uses these functions to plan one extraction job
per timestep and one probe job per (block, timestep) cell.
"""

# The paper's Figure 4 shows k-means of blocks {6, 8, 10, 12} of its 18 decoder blocks at
# t {50, 200, 400, 600, 800} of 1000 steps; other models get the same relative depths and steps.
PAPER_KMEANS_BLOCKS, PAPER_DECODER_BLOCKS = (6, 8, 10, 12), 18
PAPER_KMEANS_STEPS, PAPER_DIFFUSION_STEPS = (50, 200, 400, 600, 800), 1000


def timestep_grid(diffusion_steps: int, n: int = 20) -> list:
    """n evenly spaced steps from 0: the paper's 0, 50, ..., 950 for 1000 steps, scaled for others."""
    return sorted({round(k * diffusion_steps / n) for k in range(n)})


def kmeans_blocks(n_blocks: int) -> list:
    """The paper's Figure 4 blocks {6, 8, 10, 12} of 18, at the same relative depths of n_blocks."""
    return sorted({min(n_blocks - 1, round(b * n_blocks / PAPER_DECODER_BLOCKS)) for b in PAPER_KMEANS_BLOCKS})


def nearest_in_grid(steps, grid) -> list:
    """Each step replaced by the nearest grid step (the k-means panels reuse the sweep's stores)."""
    return sorted({min(grid, key=lambda g: (abs(g - t), g)) for t in steps})


def kmeans_steps(diffusion_steps: int, grid) -> list:
    """The paper's Figure 4 steps {50, 200, 400, 600, 800} of 1000, scaled and snapped to the grid."""
    scaled = [t * diffusion_steps / PAPER_DIFFUSION_STEPS for t in PAPER_KMEANS_STEPS]
    return nearest_in_grid(scaled, grid)


def _timestep(value):
    """A sweep table's timestep: an int, or None for a source without (empty or NaN in the CSV)."""
    if value is None or str(value) in ("", "nan", "None"):
        return None
    return int(float(value))


def choose_cells(rows, n: int) -> list:
    """The n cells with the best cross-validated mIoU, as [(layer, timestep)] sorted by timestep
    then depth (the store order of the ensemble); ties go to the smaller t, then the shallower
    depth index. timestep is None for a source without timesteps.

    rows: dicts with layer, timestep, depth (the layer's index in forward order) and miou_cv
    (e.g. csv.DictReader of the sweep's CSV).
    """
    def order(r):
        t = _timestep(r["timestep"])
        return (-1 if t is None else t, int(r["depth"]))

    ranked = sorted(rows, key=lambda r: (-float(r["miou_cv"]), *order(r)))
    return [(r["layer"], _timestep(r["timestep"])) for r in sorted(ranked[:n], key=order)]


def describe_cells(cells, auto: bool) -> str:
    """A table cell naming the (layer, timestep) cells, grouped by timestep: "t50: b0,1,2,3; t150: b0,1"
    for ADM blocks, "block3, block4" for a source without timesteps."""
    by_step = {}
    for layer, step in cells:
        by_step.setdefault(step, []).append(layer)
    parts = []
    for step, layers in by_step.items():
        if all(layer.startswith("b") and layer[1:].isdigit() for layer in layers):
            names = "b" + ",".join(layer[1:] for layer in layers)
        else:
            names = ", ".join(layers)
        parts.append(names if step is None else f"t{step}: {names}")
    text = "; ".join(parts)
    return f"auto (CV in train): {text}" if auto else text
