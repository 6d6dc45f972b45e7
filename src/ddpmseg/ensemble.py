"""Training the pixel classifier ensemble of the paper (its Sec. 3.2, settings from DatasetGAN);
the model itself, `BatchedMLPEnsemble`, is `ddpmseg.mlp`'s.

All members of all seeds are trained together as one batched model: member m has its own
weights, its own initialisation and its own shuffling of the pixels, and Adam (element-wise)
makes this the same as training them one after another, only much faster. A seed's ensemble
(the paper's unit of a run: 10 members) is initialised from a generator seeded with that
seed; its members stop by the paper's rule on their own, and it is saved as its own
state_dict. The seeds share only which pixels go into which buffer.

Training pixels are streamed (`PixelStream`): each epoch deals all labelled pixels at
random into buffers of `buffer_mb` megabytes of float32 features, so every buffer is a
random share of every image, and every member walks its own permutation of a buffer in
batches. A buffer's features are sampled bilinearly at its pixels from the native float16
Zarr maps (`stores.sample_pixel_features`), equal to the paper's upsample-everything
route at those pixels. Batches are thus uniform draws from all training pixels, as the
paper's in-RAM DataLoader gives, while memory stays at two buffers plus a cache of native
maps (`cache_mb`), however many images there are: the paper's route holds the whole
(pixels x channels) float32 matrix, 2.2 GB per 256x256 image, twice over.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from skimage.measure import label as label_connected

from ddpmseg import aggregation as cell_mixing  # (its `aggregation` setting names a string below)
from ddpmseg.mlp import BatchedMLPEnsemble, split_ensemble, stack_ensembles
from ddpmseg.precision import matmul_dtype, resolve
from ddpmseg.stores import native_bytes_per_image, native_maps, sample_pixel_features

log = logging.getLogger(__name__)


def relabel_rare_classes(labels: np.ndarray, ignore_label: int, min_pixels: int) -> np.ndarray:
    """Per image, classes with 0 < pixels < min_pixels become the ignore label (the paper's code:
    stray pixels of a whole mask), except where such a class is a labelled area of its own: a
    connected area (4-neighbours) of labelled pixels that holds that class alone, bordered by the
    ignore label or the image's edge. So a region labelled on a partly labelled image survives
    however small, while a few pixels of a class inside other labels (a whole mask's noise, or a
    labelled region's sliver of a class) go, as in the paper.

    labels: (N, H, W) uint8; returns a new array of the same shape.
    """
    labels = labels.copy()
    for image in labels:
        values, counts = np.unique(image, return_counts=True)
        rare = [v for v, c in zip(values, counts) if v != ignore_label and c < min_pixels]
        if not rare:
            continue
        areas = label_connected(image != ignore_label, connectivity=1)
        for value in rare:
            pixels = image == value
            mixed = [a for a in np.unique(areas[pixels]) if np.any(image[areas == a] != value)]
            image[pixels & np.isin(areas, mixed)] = ignore_label
    return labels


class PixelStream:
    """Epochs over the training pixels, one buffer at a time, each a random share of every image.

    Every epoch deals the labelled pixels (label != ignore) of all images at random into
    ceil(pixels / buffer_pixels) buffers of equal size, so each buffer is a uniform random
    subset of the whole training set, as the batches of the paper's in-RAM DataLoader are.
    A buffer is filled image by image with `sample_pixel_features` from the native float16
    maps, on `device`: on a GPU only those maps (1/44 of the upsampled float32 features at
    the paper's settings) cross the bus. The maps of the first `cache_images` images stay on
    `device` across buffers and epochs; the others are read from the stores again for each
    buffer. Two float32 buffers of (buffer_pixels, D) are allocated once on `device` and
    reused: while one is trained on, a background thread fills the other.
    With `draws` (Table 5's fresh noise: the same features extracted with other noise, each a
    list like `stores`), every buffer reads all its pixels from one of stores + draws chosen at
    random, and the cache holds the first images of every draw within the same budget.
    Yields (features (P, D) float32, labels (P,) int64) views into those buffers.
    """

    def __init__(self, stores, labels: np.ndarray, ignore_label: int, buffer_pixels: int, cache_images: int,
                 rng, device: str = "cpu", draws=()):
        self.draws = [stores, *draws]
        self.stores, self.size, self.rng, self.device = stores, labels.shape[-1], rng, device
        flat = labels.reshape(len(labels), -1)
        image, pixel = np.nonzero(flat != ignore_label)
        self.pixel_image = image
        self.pixel_index = torch.from_numpy(pixel).to(device)
        self.pixel_label = torch.from_numpy(flat[image, pixel].astype(np.int64)).to(device)
        self.buffer_pixels = max(1, min(buffer_pixels, len(image)))
        self.cache_images = cache_images // len(self.draws)
        self.cache = {}
        width = sum(s.shape[1] for s in stores)
        self.slots = [(torch.empty((self.buffer_pixels, width), device=device),
                       torch.empty(self.buffer_pixels, dtype=torch.long, device=device)) for _ in range(2)]

    @property
    def n_buffers(self) -> int:
        return -(-len(self.pixel_image) // self.buffer_pixels)

    def _maps(self, image: int, draw: int) -> list:
        if (draw, image) in self.cache:
            return self.cache[draw, image]
        maps = native_maps(self.draws[draw], image, self.device)
        if image < self.cache_images:
            self.cache[draw, image] = maps
        return maps

    def _fill(self, slot: int, selection: np.ndarray, draw: int):
        """Samples the pixels `selection` (indices into the labelled pixels) into buffer `slot`,
        from the stores of draw `draw`."""
        selection = selection[np.argsort(self.pixel_image[selection], kind="stable")]
        images, starts = np.unique(self.pixel_image[selection], return_index=True)
        selection = torch.from_numpy(selection).to(self.device)
        features, labels = (buffer[: len(selection)] for buffer in self.slots[slot])
        for image, start, stop in zip(images, starts, [*starts[1:], len(selection)]):
            pixels = self.pixel_index[selection[start:stop]]
            sample_pixel_features(self._maps(int(image), draw), pixels, self.size, features[start:stop])
        labels.copy_(self.pixel_label[selection])
        return features, labels

    def epoch(self):
        shares = np.array_split(self.rng.permutation(len(self.pixel_image)), self.n_buffers)
        # with one draw the generator is not touched (the same stream as before draws existed)
        draws = self.rng.integers(len(self.draws), size=len(shares)) if len(self.draws) > 1 else [0] * len(shares)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._fill, 0, shares[0], draws[0])
            for k in range(len(shares)):
                buffer = pending.result()
                if k + 1 < len(shares):
                    pending = pool.submit(self._fill, (k + 1) % 2, shares[k + 1], draws[k + 1])
                yield buffer


def train_ensemble(
    stores,
    labels: np.ndarray,
    num_classes: int,
    ignore_label: int,
    *,
    seeds,
    n_members: int,
    batch_size: int,
    lr: float,
    max_epochs: int,
    early_stop_epoch: int,
    patience: int,
    min_class_pixels: int,
    buffer_mb: float,
    cache_mb: float,
    device: str = "cpu",
    max_batches: int | None = None,
    noise_draws=(),
    precision: str = "float32",
    aggregation: str = "concat",
    aggregation_width: int = 128,
):
    """Trains one ensemble of `n_members` MLPs per seed on streamed pixel features.

    stores: Zarr arrays (N, C_k, H_k, W_k) of the training images; labels: (N, S, S) uint8.
    Each member: Adam(lr), batches of `batch_size` pixels, cross-entropy, at most
    `max_epochs` epochs; from epoch index `early_stop_epoch` on (the paper's code: 4, i.e.
    the 5th epoch), a member stops after more than `patience` consecutive batches whose loss
    does not beat its best single-batch loss. A stopped member's weights are frozen.
    Pixels stream through `PixelStream`: a buffer holds buffer_mb MiB of float32 pixel
    features (a random share of every image's pixels), and the native float16 maps of as
    many images as fit in cache_mb MiB stay in memory; peak memory is about
    2 * buffer_mb + cache_mb plus the model, whatever the number of images.
    The ensemble trains, and its buffers are filled, on `device` ('cpu' or 'cuda'); the
    cache_mb of native maps then live there too. `max_batches` ends training after that
    many batches (benchmarks). `noise_draws`: other extractions of the same features with
    other noise (lists like `stores`); each buffer then reads one of them or `stores` at random
    (Table 5's fresh noise). `precision`: `ddpmseg.precision` setting of the matrix products
    (the returned ensembles keep it). `aggregation`: concat (the paper's: the MLP reads the
    cells' channels side by side) or learned (`ddpmseg.aggregation`: each member mixes its own
    projections of the cells, `aggregation_width` channels each, with learned softmax weights;
    returned folded into plain ensembles over the concatenated features, the weights as their
    `cell_weights`). Returns ([one BatchedMLPEnsemble per seed, in eval mode, on
    the CPU], history rows
    {seed, epoch, batches, mean_loss, members_active}: one row per seed and epoch; mean_loss
    over the seed's active members' batches of that epoch, NaN once all have stopped).
    """
    seeds = list(seeds)
    labels = relabel_rare_classes(labels, ignore_label, min_class_pixels)
    in_features = sum(s.shape[1] for s in stores)
    cells = [s.shape[1] for s in stores] if aggregation == "learned" else None
    model, optimizer = _stacked_ensemble(seeds, n_members, in_features, num_classes, lr, device, precision,
                                         cells, aggregation_width)
    rng = np.random.default_rng(seeds)
    stream = _pixel_stream(stores, labels, ignore_label, in_features, buffer_mb, cache_mb, rng, device, noise_draws)
    stop = _StopRule(seeds, n_members, patience, device)
    history, batches = [], 0
    for epoch in range(max_epochs):
        batches, loss_sum, loss_count = _train_epoch(
            model, optimizer, stream, rng, stop, epoch, batches, batch_size=batch_size, num_classes=num_classes,
            early_stop_epoch=early_stop_epoch, max_batches=max_batches, device=device)
        history.extend(_epoch_rows(seeds, n_members, epoch, batches, loss_sum, loss_count, stop.active))
        log.info("epoch %d: %d batches, %d of %d members active", epoch, batches, int(stop.active.sum()),
                 model.n_members)
        if stop.done(batches, max_batches):
            break
    if cells is not None:
        model = cell_mixing.fold(model)
    return [part.eval() for part in split_ensemble(model.cpu(), len(seeds))], history


def mask_outside(labels: np.ndarray, subset, ignore_label: int) -> np.ndarray:
    """labels (N, S, S) uint8 with every image outside `subset` set to the ignore label."""
    masked = np.full_like(labels, ignore_label)
    masked[list(subset)] = labels[list(subset)]
    return masked


def split_draws(stores: list, draws: int) -> tuple:
    """(the first draw's stores, [every further draw's]) of stores given draw-major (Table 5's
    fresh noise: `draws` extractions of the same cells)."""
    per_draw = len(stores) // draws
    return stores[:per_draw], [stores[k * per_draw : (k + 1) * per_draw] for k in range(1, draws)]


def train_runs(stores, seeds, train: dict, runs_own_stores: bool = False, subsets: dict | None = None) -> tuple:
    """The ensembles of every seed and their history rows: all seeds in one `train_ensemble` call
    where they share stores and labels, else one call per seed, each with its own stores (per-run
    noise: `stores` run-major, one equal share per seed) and its own labels (Table 4: `subsets`
    {seed: image indices}, the other images ignore-labelled). `train`: train_ensemble's other
    arguments (labels, num_classes, ignore_label, settings, device)."""
    if not runs_own_stores and subsets is None:
        return train_ensemble(stores, seeds=seeds, **train)
    per_run = len(stores) // len(seeds) if runs_own_stores else len(stores)
    models, history = [], []
    for k, seed in enumerate(seeds):
        run_stores = stores[k * per_run : (k + 1) * per_run] if runs_own_stores else stores
        run_train = train if subsets is None else {
            **train, "labels": mask_outside(train["labels"], subsets[seed], train["ignore_label"])}
        run_models, run_history = train_ensemble(run_stores, seeds=[seed], **run_train)
        models += run_models
        history += run_history
    return models, history


def _stacked_ensemble(seeds: list, n_members: int, in_features: int, num_classes: int, lr: float, device: str,
                      precision: str, cells: list | None = None, width: int = 128):
    """(model, optimizer): the ensembles of all seeds stacked into one of len(seeds) * n_members
    members (seed-major; each seed's part initialised from that seed), in train mode on `device`
    with its matrix products in `precision`, and its fused Adam(lr) optimiser. With `cells` (the
    channels of each cell), a `cell_mixing.CellMixingEnsemble` mixing them at `width` channels."""
    if cells is None:
        model = stack_ensembles([BatchedMLPEnsemble(n_members, in_features, num_classes, seed) for seed in seeds])
    else:
        model = cell_mixing.CellMixingEnsemble(seeds, n_members, cells, width, num_classes)
    model = model.to(device).train()
    model.matmul_dtype = matmul_dtype(resolve(precision, device))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    return model, optimizer


def _pixel_stream(stores, labels: np.ndarray, ignore_label: int, in_features: int, buffer_mb: float, cache_mb: float,
                  rng, device: str, noise_draws) -> PixelStream:
    """The `PixelStream` of the labelled pixels of `labels` (N, S, S) uint8: buffers of buffer_mb
    MiB of float32 features (in_features a pixel), the native maps of as many images as fit in
    cache_mb MiB cached; logs its sizes."""
    stream = PixelStream(stores, labels, ignore_label, buffer_pixels=int(buffer_mb * 2**20 // (in_features * 4)),
                         cache_images=int(cache_mb * 2**20 // native_bytes_per_image(stores)), rng=rng, device=device,
                         draws=noise_draws)
    log.info("%d labelled pixels x %d features in %d buffers of %d pixels; native maps of %d of %d images cached",
             len(stream.pixel_image), in_features, stream.n_buffers, stream.buffer_pixels,
             min(stream.cache_images, len(labels)), len(labels))
    return stream


class _StopRule:
    """The paper's early stop of each of the M = len(seeds) * n_members members (seed-major), on `device`.

    best_loss (M,) float32: each member's best single-batch cross-entropy (nats) so far, counted
    from early_stop_epoch on; stall (M,) int64: its consecutive batches since without beating it;
    active (M,) bool: whether it still trains; frozen {member: {name: tensor}}: the weights and BN
    statistics of each stopped member at the moment it stopped.
    """

    def __init__(self, seeds: list, n_members: int, patience: int, device: str):
        self.seeds, self.n_members, self.patience = seeds, n_members, patience
        n_total = len(seeds) * n_members
        self.best_loss = torch.full((n_total,), float("inf"), device=device)
        self.stall = torch.zeros(n_total, dtype=torch.long, device=device)
        self.active = torch.ones(n_total, dtype=torch.bool, device=device)
        self.frozen = {}  # member -> {name: tensor} snapshot at the moment it stopped

    def update(self, model, member_loss: torch.Tensor, epoch: int, batches: int) -> None:
        """Counts one batch of losses member_loss (M,) float32 (nats); every active member that has
        now gone more than `patience` batches without a new best stops, its weights snapshotted."""
        improved = member_loss < self.best_loss
        self.best_loss = torch.where(improved, member_loss, self.best_loss)
        self.stall = torch.where(improved, torch.zeros_like(self.stall), self.stall + 1)
        for m in torch.nonzero(self.active & (self.stall > self.patience)).flatten().tolist():
            self.active[m] = False
            self.frozen[m] = {k: v[m].detach().clone() for k, v in model.member_slices().items()}
            log.info("seed %d member %d stopped at epoch %d after %d batches",
                     self.seeds[m // self.n_members], m % self.n_members, epoch, batches)

    def done(self, batches: int, max_batches: int | None) -> bool:
        """Whether training ends: every member has stopped, or `max_batches` batches are done."""
        return not self.active.any() or batches == max_batches


def _train_epoch(model, optimizer, stream: PixelStream, rng, stop: _StopRule, epoch: int,
                 batches: int, *, batch_size: int, num_classes: int, early_stop_epoch: int, max_batches: int | None,
                 device: str):
    """One epoch over the stream's buffers, each member walking its own permutation of a buffer in
    batches of `batch_size` pixels (a last batch of one pixel is skipped: BatchNorm needs two),
    until `stop.done`. `batches`: the batches done before. Returns (batches done after, loss_sum
    (M,) float32: the sum of each member's batch losses (nats) while active, loss_count (M,)
    float32: its number of such batches)."""
    n_total = model.n_members
    # over this epoch's active batches
    loss_sum, loss_count = torch.zeros(n_total, device=device), torch.zeros(n_total, device=device)
    for features, targets in stream.epoch():
        n_pixels = len(targets)
        perms = torch.from_numpy(rng.permuted(np.tile(np.arange(n_pixels), (n_total, 1)), axis=1)).to(device)
        for start in range(0, n_pixels, batch_size):
            index = perms[:, start : start + batch_size]  # (M, B)
            if index.shape[1] < 2:  # BatchNorm needs two samples
                continue
            member_loss = _train_batch(model, optimizer, features, targets, index, stop.active, num_classes)
            batches += 1
            loss_sum += torch.where(stop.active, member_loss, 0.0)
            loss_count += stop.active
            if epoch >= early_stop_epoch:
                stop.update(model, member_loss, epoch, batches)
            _restore_frozen(model, stop.frozen)
            if stop.done(batches, max_batches):
                break
        if stop.done(batches, max_batches):
            break
    return batches, loss_sum, loss_count


def _train_batch(model, optimizer, features: torch.Tensor, targets: torch.Tensor,
                 index: torch.Tensor, active: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One Adam step of every member on its own batch: index (M, B) int64 rows of the buffer's
    features (P, D) float32 and targets (P,) int64; only active (M,) bool members' losses give
    gradients. Returns each member's mean cross-entropy over its batch (M,) float32 (nats), detached."""
    logits = model(features[index])
    loss_per_member = F.cross_entropy(
        logits.reshape(-1, num_classes), targets[index].reshape(-1), reduction="none"
    ).reshape(model.n_members, -1).mean(dim=1)
    optimizer.zero_grad(set_to_none=True)
    (loss_per_member * active).sum().backward()
    optimizer.step()
    return loss_per_member.detach()


def _epoch_rows(seeds: list, n_members: int, epoch: int, batches: int, loss_sum: torch.Tensor,
                loss_count: torch.Tensor, active: torch.Tensor) -> list:
    """One history row {seed, epoch, batches, mean_loss, members_active} per seed from an epoch's
    loss_sum and loss_count (M,) float32 and active (M,) bool (`_train_epoch`): mean_loss (nats)
    over the seed's active members' batches, NaN when there were none."""
    rows = []
    for k, seed in enumerate(seeds):
        group = slice(k * n_members, (k + 1) * n_members)
        count = float(loss_count[group].sum())
        mean_loss = float(loss_sum[group].sum()) / count if count else float("nan")
        rows.append(dict(seed=seed, epoch=epoch, batches=batches, mean_loss=mean_loss,
                         members_active=int(active[group].sum())))
    return rows


@torch.no_grad()
def _restore_frozen(model, frozen: dict) -> None:
    """Puts back the weights and BN statistics of stopped members (Adam momentum moves them)."""
    if not frozen:
        return
    slices = model.member_slices()
    for m, snapshot in frozen.items():
        for name, value in snapshot.items():
            slices[name].data[m] = value
