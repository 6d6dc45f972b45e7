"""A trained segmenter as one self-describing folder (a bundle), usable without config or Snakemake:


    from ddpmseg.segmenter import Segmenter
    segmenter = Segmenter.load("results/fasseg_face6/ddpm/seed0/segmenter")
    labels, uncertainty = segmenter.predict(images)        # (N, S, S, 3) uint8 at segmenter.image_size
    labels, uncertainty = segmenter.predict_files(paths)   # any image files: lists at each file's own size

A bundle folder holds `segmenter.json` (what it is: classes, palette, image size and how images
are brought to it, the vote, and for an ensemble the feature recipe: source, settings, the
(layer, timestep) cells in the ensemble's order, the checkpoint's path relative to the bundle
and its sha256, the model and noise seeds) and `weights.pt` (the model's state_dict). `load` checks that the
checkpoint is there and has the recorded sha256: features of other weights would be silently
wrong. Kind "ensemble": one seed's MLP ensemble on features extracted on the fly with the same
recipe (and the same shared noise) as the run that trained it, so its masks equal that run's.
Kind "deeplab": a DeepLabV3 distilled from an ensemble's labels (`ddpmseg.deeplab`). A bundle's
kind picks its class (`KINDS`), which does what differs between kinds: predicting, the
uncertainty's name and bound, its summary and its ONNX graph.
"""

import json
import math
import os
from contextlib import contextmanager
import tempfile
from pathlib import Path

import numpy as np
import torch

from ddpmseg.atomic import folder_written_atomically
from ddpmseg.errors import CheckpointError

FORMAT = "ddpmseg-segmenter/1"
DESCRIPTION_FILE = "segmenter.json"
WEIGHTS_FILE = "weights.pt"
CHUNK_IMAGES = 64  # images whose features are held at once (in a scratch folder) when no features_dir is given


class Segmenter:
    """A trained model and everything needed to apply it to images; made by `from_description`
    (or `load`, `for_ensemble`, `for_deeplab`) as the class of its kind (`KINDS`), which defines
    `uncertainty_max`, `summary()`, `graph()` and `_predict` (`predict` of checked images).

    description: the bundle's `segmenter.json` content (see the module docstring); weights: the
    model's state_dict; folder: the bundle folder relative paths in the description start
    from (None before `save`).
    """

    KIND: str  # the description's kind
    UNCERTAINTY: str  # the name of what `predict`'s uncertainty is (nats)
    UNCERTAINTY_IN_FULL: str  # the same as prediction files state it, with its unit

    def __init__(self, description: dict, weights: dict, folder=None):
        if description.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} description (format {description.get('format')!r})")
        self.description, self.weights = description, weights
        self.folder = None if folder is None else Path(folder)

    @staticmethod
    def from_description(description: dict, weights: dict, folder=None) -> "Segmenter":
        """The segmenter of the description's kind (`KINDS`); ValueError for a kind this ddpmseg
        does not know."""
        kind = description.get("kind")
        if kind not in KINDS:
            raise ValueError(f"a bundle of kind {kind!r}; this ddpmseg knows kinds {', '.join(KINDS)}")
        return KINDS[kind](description, weights, folder)

    @property
    def classes(self) -> list:
        return list(self.description["classes"])

    @property
    def image_size(self) -> int:
        return int(self.description["image_size"])

    @property
    def palette(self) -> np.ndarray:
        """(K, 3) uint8 colour of each class in the masks."""
        return np.asarray(self.description["palette"], np.uint8)

    @classmethod
    def for_ensemble(cls, ensemble_path, *, plan, cells, checkpoint, model_seed: int, noise_seed: int,
                     noise_device: str, batch_images: int, threads: dict, classes: list, ignore_label: int, image_size: int,
                     non_square: str, resize: str, vote: str, provenance: dict,
                     precision: dict | None = None) -> "Segmenter":
        """The bundle of one seed's ensemble (state_dict at `ensemble_path`) trained on the
        features of `plan` (a `ddpmseg.methods.MethodPlan`) at `cells` [(layer, timestep)], the
        source model built from `checkpoint` (a path or None) and `model_seed`. `threads`:
        {"extraction": n, "prediction": m}, the torch threads of the run's jobs (the numbers
        depend on them: torch splits reductions by thread). `precision`: {"extraction": setting,
        "ensemble": setting} of `ddpmseg.precision` (default float32 both), resolved where the
        bundle predicts."""
        from ddpmseg.download import sha256_of
        from ddpmseg.palette import palette

        recipe = {"plan": plan.as_dict(), "cells": [list(cell) for cell in cells], "model_seed": model_seed,
                  "noise_seed": noise_seed, "noise_mode": "shared", "noise_device": noise_device,
                  "batch_images": batch_images, "threads": dict(threads),
                  "precision": {"extraction": "float32", "ensemble": "float32", **(precision or {})},
                  "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
                  "checkpoint_sha256": None if checkpoint is None else sha256_of(checkpoint)}
        description = {"format": FORMAT, "kind": EnsembleSegmenter.KIND, "classes": list(classes),
                       "palette": palette(len(classes))[: len(classes)].tolist(), "ignore_label": ignore_label,
                       "image_size": image_size, "non_square": non_square, "resize": resize, "vote": vote,
                       "features": recipe, "provenance": provenance}
        return EnsembleSegmenter(description, torch.load(ensemble_path, map_location="cpu", weights_only=True))

    @classmethod
    def for_deeplab(cls, state: dict, *, backbone: str, threads: int, classes: list, ignore_label: int,
                    image_size: int, non_square: str, resize: str, provenance: dict,
                    input_size=None) -> "Segmenter":
        """The bundle of a trained DeepLabV3 (`ddpmseg.deeplab`; its whole state_dict, backbone
        included, so no other file is needed), run at `input_size` (None: at image_size);
        uncertainty is the entropy of its softmax."""
        from ddpmseg.palette import palette

        description = {"format": FORMAT, "kind": DeepLabSegmenter.KIND, "classes": list(classes),
                       "palette": palette(len(classes))[: len(classes)].tolist(), "ignore_label": ignore_label,
                       "image_size": image_size, "non_square": non_square, "resize": resize, "vote": "argmax",
                       "deeplab": {"backbone": backbone, "normalisation": "imagenet", "threads": threads,
                                   "input_size": input_size},
                       "provenance": provenance}
        return DeepLabSegmenter(description, state)

    def save(self, folder) -> None:
        """Writes the bundle folder (atomically: a failure leaves no half-written folder); the
        checkpoint is recorded relative to it, so that a results tree can move as a whole."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        description = json.loads(json.dumps(self.description))
        checkpoint = self.checkpoint_path
        if checkpoint is not None:  # kind "ensemble" with a model checkpoint
            description["features"]["checkpoint"] = os.path.relpath(checkpoint.resolve(), folder.resolve())
        with folder_written_atomically(folder) as tmp:
            (tmp / DESCRIPTION_FILE).write_text(json.dumps(description, indent=1))
            torch.save(self.weights, tmp / WEIGHTS_FILE)
        self.description, self.folder = description, folder

    @classmethod
    def load(cls, folder) -> "Segmenter":
        """The bundle at `folder`; CheckpointError (one line naming the bundle and the checkpoint)
        when its feature checkpoint is missing or is another file than the one it was built with."""
        folder = Path(folder)
        description_path = folder / DESCRIPTION_FILE
        if not description_path.is_file():
            raise CheckpointError(f"{folder}: no {DESCRIPTION_FILE} here; give the folder of a bundle written by the "
                                  "workflow (results/<dataset>/<method>/seed<s>/segmenter)")
        description = json.loads(description_path.read_text())
        if description.get("format") != FORMAT:
            raise CheckpointError(f"{description_path}: a bundle of format {description.get('format')!r}; this "
                                  f"ddpmseg reads {FORMAT}: install the ddpmseg that wrote it (or a newer one)")
        if description.get("kind") not in KINDS:
            raise CheckpointError(f"{description_path}: a bundle of kind {description.get('kind')!r}; this ddpmseg "
                                  f"reads kinds {', '.join(KINDS)}: install the ddpmseg that wrote it (or a newer one)")
        segmenter = cls.from_description(description, torch.load(folder / WEIGHTS_FILE, map_location="cpu",
                                                                  weights_only=True), folder)
        segmenter._check_checkpoint()
        return segmenter

    @property
    def checkpoint_path(self) -> Path | None:
        """The feature source's checkpoint file (relative paths resolved against the bundle
        folder), or None where the source needs none."""
        given = self.description.get("features", {}).get("checkpoint")
        if given is None:
            return None
        path = Path(given)
        return path if path.is_absolute() or self.folder is None else self.folder / path

    def _check_checkpoint(self) -> None:
        from ddpmseg.download import sha256_of

        path = self.checkpoint_path
        if path is None:
            return
        expected = self.description["features"]["checkpoint_sha256"]
        if not path.is_file():
            raise CheckpointError(f"{self.folder}: the bundle's feature checkpoint {path} is missing; put that file "
                                  "back (the bundle records it relative to itself) or rebuild the bundle")
        found = sha256_of(path)
        if found != expected:
            raise CheckpointError(f"{self.folder}: the bundle's feature checkpoint {path} has sha256 {found}, the "
                                  f"bundle was built with {expected}; restore that file or rebuild the bundle")

    def predict(self, images: np.ndarray, features_dir=None, device: str = "cpu", original_sizes=None) -> tuple:
        """Segments images: (N, S, S, 3) uint8 at `image_size` -> labels (N, S, S) uint8 (the
        bundle's vote) and uncertainty (N, S, S) float32, nats: for an ensemble the Jensen-Shannon
        divergence of the members' softmax, for DeepLab the entropy of its softmax. An
        ensemble's features go to `features_dir` (one store per cell, kept) or, CHUNK_IMAGES
        images at a time, to a scratch folder.

        original_sizes: [(height, width)] of the files the images were made from (the bundle's
        non_square and resize): labels and uncertainty then come back as lists of (height,
        width) arrays at those sizes, voted there from the members' upsampled probabilities
        (`ddpmseg.votes.votes_at_original_size`)."""
        images = np.asarray(images)
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, {size}, {size}, 3) uint8 (this segmenter's image size); got "
                             f"{images.shape} {images.dtype}. Use predict_files, or resize them first.")
        if original_sizes is not None and len(original_sizes) != len(images):
            raise ValueError(f"{len(original_sizes)} original sizes for {len(images)} images")
        return self._predict(images, features_dir, device, original_sizes)

    def predict_files(self, paths, device: str = "cpu") -> tuple:
        """Segments image files, each read and brought to the model's size as the training splits
        were (the bundle's non_square and resize policies): labels [(H, W) uint8] and uncertainty
        [(H, W) float32, nats], each at its file's own size (`predict` with original_sizes)."""
        from ddpmseg.resizing import fit_image
        from ddpmseg.images import read_rgb

        d = self.description
        pictures = [read_rgb(p) for p in paths]
        images = np.stack([fit_image(rgb, self.image_size, d["non_square"], d["resize"], p)
                           for rgb, p in zip(pictures, paths)])
        return self.predict(images, device=device, original_sizes=[rgb.shape[:2] for rgb in pictures])


class EnsembleSegmenter(Segmenter):
    """Kind "ensemble": one seed's MLP ensemble on its source's features, extracted on the fly."""

    KIND = "ensemble"
    UNCERTAINTY = "Jensen-Shannon divergence"
    UNCERTAINTY_IN_FULL = "Jensen-Shannon divergence of the members' softmax, nats"

    def __init__(self, description: dict, weights: dict, folder=None):
        super().__init__(description, weights, folder)
        self._source_models = {}  # device -> (model, layer table, identity) of the feature source

    @property
    def uncertainty_max(self) -> float:
        """The largest uncertainty `predict` can give, nats: log(min(members, classes)), the
        bound of the members' JS divergence."""
        return math.log(min(self.weights["weight0"].shape[0], len(self.classes)))

    def summary(self) -> list:
        """What `ddpmseg info` says of the ensemble: its members, vote, source, cells, checkpoint."""
        d = self.description
        recipe = d["features"]
        cells = ", ".join(layer + ("" if t is None else f"@t{t}") for layer, t in recipe["cells"])
        members = self.weights["weight0"].shape[0]
        mixing = " with learned cell weights" if "cell_weights" in self.weights else ""
        lines = [f"kind: ensemble of {members} MLPs{mixing}, {d['vote']} vote; uncertainty: {self.UNCERTAINTY}",
                 f"source: {recipe['plan']['source']} ({recipe['plan']['name']}), model seed {recipe['model_seed']}",
                 f"cells ({len(recipe['cells'])}): {cells}"]
        checkpoint = self.checkpoint_path
        lines.append("checkpoint: none (weights from the source's settings)" if checkpoint is None else
                     f"checkpoint: {checkpoint.resolve()} (sha256 {recipe['checkpoint_sha256']})")
        return lines

    def graph(self):
        """The ONNX export's module (`export.EnsembleGraph`); ValueError for a source that does not export."""
        from ddpmseg.export import EnsembleGraph

        return EnsembleGraph(self)

    def _predict(self, images: np.ndarray, features_dir, device: str, original_sizes) -> tuple:
        """`predict` of checked images: the features in `features_dir`, or CHUNK_IMAGES at a time in
        a scratch folder."""
        if features_dir is not None:
            return self._predict_stores(images, Path(features_dir), device, original_sizes)
        parts = []
        for start in range(0, len(images), CHUNK_IMAGES):
            with tempfile.TemporaryDirectory(prefix="ddpmseg-segment-") as scratch:
                part = slice(start, start + CHUNK_IMAGES)
                sizes = None if original_sizes is None else original_sizes[part]
                parts.append(self._predict_stores(images[part], Path(scratch), device, sizes))
        if original_sizes is not None:
            return [a for p in parts for a in p[0]], [a for p in parts for a in p[1]]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def source_model(self, device: str = "cpu") -> tuple:
        """(model, layer table, identity) of the bundle's feature source on `device`, built from
        its checkpoint once per device (features.build_method_model) and shared by every call."""
        from ddpmseg.features import build_method_model
        from ddpmseg.methods import MethodPlan

        if device not in self._source_models:
            recipe = self.description["features"]
            self._source_models[device] = build_method_model(MethodPlan(**recipe["plan"]), self.image_size, self.checkpoint_path,
                                                             device, recipe["model_seed"])
        return self._source_models[device]

    def _predict_stores(self, images: np.ndarray, features_dir: Path, device: str, original_sizes=None) -> tuple:
        from ddpmseg.features import extract_cells
        from ddpmseg.mlp import ensemble_from_state_dict
        from ddpmseg.predict import predict_images, predict_images_at_original_size
        from ddpmseg.stores import open_stores
        from ddpmseg.precision import matmul_dtype, resolve

        recipe = self.description["features"]
        precision = recipe.get("precision", {})  # bundles written before precision was a setting: float32
        plan, cells = recipe["plan"], [tuple(cell) for cell in recipe["cells"]]
        model, table, identity = self.source_model(device)
        ids = [str(i) for i in range(len(images))]
        with _torch_threads(recipe["threads"]["extraction"]):
            paths = extract_cells(plan["source"], model, images, ids, cells, table, features_dir,
                                  {**identity, "split": "segment"}, noise_seed=recipe["noise_seed"],
                                  noise_device=recipe["noise_device"], noise_mode=recipe["noise_mode"],
                                  batch_images=recipe["batch_images"], device=device,
                                  precision=precision.get("extraction", "float32"))
        ensemble = ensemble_from_state_dict(self.weights,
                                            matmul_dtype(resolve(precision.get("ensemble", "float32"), device))).eval()
        size = self.image_size
        with _torch_threads(recipe["threads"]["prediction"]), torch.no_grad():
            if original_sizes is None:
                majority, soft, uncertainty = predict_images([ensemble], open_stores(paths), len(images), size,
                                                             device)[0]
                return (majority if self.description["vote"] == "majority" else soft), uncertainty
            majority, soft, js = predict_images_at_original_size(
                [ensemble], open_stores(paths), original_sizes, size, self.description["non_square"],
                self.description["ignore_label"], device)[0]
            return (majority if self.description["vote"] == "majority" else soft), js


class DeepLabSegmenter(Segmenter):
    """Kind "deeplab": a DeepLabV3 distilled from an ensemble's labels (`ddpmseg.deeplab`)."""

    KIND = "deeplab"
    UNCERTAINTY = "entropy of the softmax"
    UNCERTAINTY_IN_FULL = "entropy of the softmax, nats"

    @property
    def uncertainty_max(self) -> float:
        """The largest uncertainty `predict` can give, nats: log(classes), the bound of its entropy."""
        return math.log(len(self.classes))

    def summary(self) -> list:
        """What `ddpmseg info` says of the DeepLab: its backbone and input size."""
        d = self.description
        return [f"kind: deeplab (DeepLabV3, backbone {d['deeplab']['backbone']}, input size "
                f"{d['deeplab'].get('input_size') or d['image_size']}); uncertainty: entropy of its softmax"]

    def graph(self):
        """The ONNX export's module (`export.DeepLabGraph`)."""
        from ddpmseg.export import DeepLabGraph

        return DeepLabGraph(self)

    def _at_original_size(self, probabilities, size: tuple, vote: str, uncertainty: str) -> tuple:
        """(labels, uncertainty) of (M, C, S, S) probabilities at an image's own (height, width)."""
        from ddpmseg.votes import votes_at_original_size

        votes = votes_at_original_size(probabilities, int(size[0]), int(size[1]), self.description["non_square"],
                                       self.description["ignore_label"], (vote, uncertainty))
        return votes[vote], votes[uncertainty]

    def _predict(self, images: np.ndarray, features_dir, device: str, original_sizes) -> tuple:
        """`predict` of checked images (features_dir unused: DeepLab takes the images)."""
        from ddpmseg.deeplab import build_deeplab, deeplab_logits, predict_deeplab

        settings = self.description["deeplab"]
        model = build_deeplab(settings["backbone"], len(self.classes))
        model.load_state_dict(self.weights)
        with _torch_threads(settings["threads"]):
            if original_sizes is None:
                return predict_deeplab(model, images, device=device, input_size=settings.get("input_size"))
            model.eval().to(device)
            labels, uncertainty = [], []
            with torch.no_grad():
                for image, size in zip(images, original_sizes):
                    logits = deeplab_logits(model, image[None], settings.get("input_size"), device)
                    label, spread = self._at_original_size(torch.softmax(logits.float(), dim=1), size, "argmax",
                                                           "entropy")
                    labels.append(label)
                    uncertainty.append(spread)
            return labels, uncertainty


KINDS = {kind.KIND: kind for kind in (EnsembleSegmenter, DeepLabSegmenter)}  # a bundle's kind -> its class


@contextmanager
def _torch_threads(n: int):
    """torch's intra-op thread count set to n for the block, then put back."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
