"""Procedural, deterministic generator of the workflow's embedded default dataset.

Every image shows one four-legged cartoon creature on a smooth background. The creature
is built from analytic primitives (ellipses, tapered capsules, triangles, discs) in its own
object frame, in which the body is an ellipse of semi-major axis 1 centred at the origin,
facing +x with y pointing up. A random similarity transform (scale, small rotation,
translation; the creature always faces right, like aligned faces in a face dataset) places
it in the image; legs, neck, head, ears and tail have their own random pose and size.

Colour alone does not identify a part: all fur parts of one creature (body and neck,
head, ears, legs, tail) share one random base colour and one texture (plain, stripes
or spots) laid out in object coordinates, so the pattern runs across part borders;
the background is a linear gradient between two colours drawn from the same distribution
as the fur colours.

Shapes are painted on a grid supersampled `SUPERSAMPLE` times per axis in painter's
order (a pixel's label is the last part painted over it). The image is then
downsampled by area averaging, the label by the majority of each block (ties go to
the first block pixel in raster order), and mild Gaussian pixel noise is added.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES: list[str] = ["background", "body", "head", "ear", "eye", "leg", "tail"]
IGNORE_LABEL = 255

BACKGROUND, BODY, HEAD, EAR, EYE, LEG, TAIL = range(len(CLASSES))  # label ids, in CLASSES order

DATASET_NAME = "synthetic-creatures"
SPLIT_INDEX = {"train": 0, "test": 1, "unlabeled": 2}  # entropy of each split's stream
SUPERSAMPLE = 2  # supersampled grid points per output pixel along each axis
PIXEL_NOISE_STD = 0.015  # std of the Gaussian pixel noise, on the [0, 1] intensity scale
BBOX_AREA_FRACTION = (0.55, 0.9)  # creature bounding box area / image area (its pixels: about 20-45%)
IMAGE_MARGIN = 0.02  # gap kept between the creature bounding box and the image border
MAX_ROTATION = np.deg2rad(15.0)
FAR_SIDE_SHADE = 0.82  # brightness factor of the far legs and far ear
TOP_LIGHT_GAIN = 0.1  # fur brightens by up to this fraction towards the creature's top


def _fur_colour(rng: np.random.Generator) -> np.ndarray:
    """A random fur (and distractor) colour: (3,) float64 RGB in [0, 1]."""
    hue, saturation, value = rng.uniform(0.0, 1.0), rng.uniform(0.15, 0.8), rng.uniform(0.3, 0.95)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value))


def _eye_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Iris and pupil/highlight colours, each (3,) float64 RGB: one dark and one bright."""
    dark = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.6), rng.uniform(0.02, 0.2)))
    bright = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.85, 1.0)))
    return (dark, bright) if rng.uniform() < 0.7 else (bright, dark)


def _rotate(vector: np.ndarray, angle: float) -> np.ndarray:
    """`vector` (2,) rotated counter-clockwise by `angle` radians, (2,) float64."""
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([cos * vector[0] - sin * vector[1], sin * vector[0] + cos * vector[1]])


def _direction(angle: float) -> np.ndarray:
    """Unit vector (2,) at `angle` radians from +x, counter-clockwise."""
    return np.array([np.cos(angle), np.sin(angle)])


@dataclass(frozen=True)
class _Ellipse:
    """Filled ellipse: `centre` (2,), `semi_axes` (2,) along its own axes, rotated by `angle`."""

    centre: np.ndarray
    semi_axes: np.ndarray
    angle: float = 0.0

    def mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask, shape of `x`, of the grid points (x, y) inside the ellipse."""
        dx, dy = x - self.centre[0], y - self.centre[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        along, across = (cos * dx + sin * dy) / self.semi_axes[0], (cos * dy - sin * dx) / self.semi_axes[1]
        return along * along + across * across <= 1.0

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding circles: centres (1, 2) and radii (1,)."""
        return self.centre[None, :], np.array([self.semi_axes.max()])


@dataclass(frozen=True)
class _Capsule:
    """Thick segment from `start` (2,) to `end` (2,) whose radius tapers linearly."""

    start: np.ndarray
    end: np.ndarray
    start_radius: float
    end_radius: float

    def mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask, shape of `x`, of the grid points (x, y) inside the capsule."""
        seg = self.end - self.start
        dx, dy = x - self.start[0], y - self.start[1]
        t = np.clip((dx * seg[0] + dy * seg[1]) / max(seg @ seg, 1e-12), 0.0, 1.0)
        ox, oy = dx - t * seg[0], dy - t * seg[1]
        radius = self.start_radius + t * (self.end_radius - self.start_radius)
        return ox * ox + oy * oy <= radius * radius

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding circles: centres (2, 2) and radii (2,)."""
        return np.stack([self.start, self.end]), np.array([self.start_radius, self.end_radius])


@dataclass(frozen=True)
class _Triangle:
    """Filled triangle with `vertices` (3, 2)."""

    vertices: np.ndarray

    def mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask, shape of `x`, of the grid points (x, y) inside the triangle."""
        signs = []
        for (ax, ay), (bx, by) in zip(self.vertices, np.roll(self.vertices, -1, axis=0)):
            signs.append((bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0.0)
        return (signs[0] & signs[1] & signs[2]) | ~(signs[0] | signs[1] | signs[2])

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding circles: centres (3, 2) and radii (3,) (zero)."""
        return self.vertices, np.zeros(3)


_Shape = _Ellipse | _Capsule | _Triangle


@dataclass(frozen=True)
class _Part:
    """One painted primitive of a creature.

    `label` is its class id; `colour` is None for fur (painted from the creature's fur
    field times `shade`) or a fixed (3,) RGB colour (eyes).
    """

    label: int
    shape: _Shape
    shade: float = 1.0
    colour: np.ndarray | None = None


def _leg_parts(rng: np.random.Generator, hip: np.ndarray, length: float, radius: float,
               swing: float, shade: float) -> list[_Part]:
    """Two tapered capsules (thigh, shin) hanging from `hip` (2,), rotated `swing` rad from straight down."""
    thigh_dir = _direction(-np.pi / 2 + swing)
    knee = hip + 0.5 * length * thigh_dir
    foot = knee + 0.5 * length * _rotate(thigh_dir, rng.uniform(-0.6, 0.6))
    knee_radius = 0.8 * radius
    return [_Part(LEG, _Capsule(hip, knee, radius, knee_radius), shade),
            _Part(LEG, _Capsule(knee, foot, knee_radius, 0.75 * knee_radius), shade)]


def _tail_parts(rng: np.random.Generator, body_height: float) -> list[_Part]:
    """A curved, tapering tail from the rump: a chain of capsules along a constant-curvature arc."""
    segments = 8
    root = np.array([-0.9, 0.2 * body_height])
    length = rng.uniform(0.9, 1.5)
    turn_per_segment = rng.uniform(-2.0, 2.0) * length / segments  # curvature of -2..2 rad per unit length
    heading = np.pi - rng.uniform(-0.5, 1.2) + turn_per_segment * np.arange(1, segments + 1)
    steps = length / segments * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    points = root + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    radii = np.linspace(rng.uniform(0.12, 0.17), 0.05, segments + 1)
    return [_Part(TAIL, _Capsule(points[i], points[i + 1], radii[i], radii[i + 1])) for i in range(segments)]


def _creature_parts(rng: np.random.Generator) -> list[_Part]:
    """All primitives of one random creature in object coordinates, in painter's order.

    Order: tail, far legs, body, neck (labelled body), near legs, ears, head, eye (iris, pupil).
    """
    body_height = rng.uniform(0.42, 0.6)
    body = _Part(BODY, _Ellipse(np.zeros(2), np.array([1.0, body_height]), rng.uniform(-0.1, 0.1)))

    leg_length = rng.uniform(0.9, 1.4)
    leg_radius = rng.uniform(0.13, 0.18)
    hip_x = rng.uniform(0.5, 0.65)
    hip_y = -0.35 * body_height
    near_legs, far_legs = [], []
    for side_x in (hip_x, -hip_x):  # front pair, then back pair
        swing = rng.uniform(-0.5, 0.5)
        stride = rng.uniform(0.1, 0.5) * rng.choice([-1.0, 1.0])
        near_legs += _leg_parts(rng, np.array([side_x, hip_y]), leg_length, leg_radius, swing + stride, 1.0)
        far_legs += _leg_parts(rng, np.array([side_x - 0.12, hip_y + 0.05]), leg_length, leg_radius,
                               swing - stride, FAR_SIDE_SHADE)

    shoulder = np.array([0.65, 0.2 * body_height])
    neck_end = shoulder + rng.uniform(0.45, 0.75) * _direction(rng.uniform(0.5, 1.2))
    neck_radius = rng.uniform(0.2, 0.28)
    neck = _Part(BODY, _Capsule(shoulder, neck_end, 1.2 * neck_radius, neck_radius))

    head_radius = rng.uniform(0.5, 0.62)
    head_axes = np.array([head_radius * rng.uniform(1.05, 1.3), head_radius])
    head_tilt = rng.uniform(-0.4, 0.3)
    head = _Part(HEAD, _Ellipse(neck_end, head_axes, head_tilt))

    def on_head(local: np.ndarray) -> np.ndarray:
        """Object coordinates of a point given in the head's own frame."""
        return neck_end + _rotate(local, head_tilt)

    ear_length = head_radius * rng.uniform(1.0, 1.5)
    ear_half_width = head_radius * rng.uniform(0.35, 0.5)
    ears = []
    for anchor_angle, shade in ((rng.uniform(1.3, 1.7), FAR_SIDE_SHADE), (rng.uniform(1.8, 2.3), 1.0)):
        base_centre = on_head(0.7 * head_axes * _direction(anchor_angle))
        pointing = _direction(head_tilt + anchor_angle + rng.uniform(-0.3, 0.3))
        across = _rotate(pointing, np.pi / 2)
        vertices = np.stack([base_centre + ear_half_width * across, base_centre - ear_half_width * across,
                             base_centre + ear_length * pointing])
        ears.append(_Part(EAR, _Triangle(vertices), shade))

    eye_radius = head_radius * rng.uniform(0.36, 0.44)
    eye_centre = on_head(head_axes * np.array([rng.uniform(0.3, 0.45), rng.uniform(0.1, 0.3)]))
    iris_colour, pupil_colour = _eye_colours(rng)
    pupil_centre = eye_centre + 0.35 * eye_radius * _direction(rng.uniform(0.0, 2 * np.pi))
    eye = [_Part(EYE, _Ellipse(eye_centre, np.full(2, eye_radius)), colour=iris_colour),
           _Part(EYE, _Ellipse(pupil_centre, np.full(2, 0.45 * eye_radius)), colour=pupil_colour)]

    return [*_tail_parts(rng, body_height), *far_legs, body, neck, *near_legs, *ears, head, *eye]


def _spot_coverage(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, spacing: float) -> np.ndarray:
    """Soft coverage in [0, 1] of random spots, one per cell of a square lattice of period `spacing`.

    Each lattice cell holds a spot at a random position within it with a random radius of
    0.2-0.45 `spacing`; a grid point is tested against the spots of its own and the 8
    neighbouring cells. Returns float64 of shape x.shape.
    """
    cell_x, cell_y = np.floor(x / spacing).astype(np.int64), np.floor(y / spacing).astype(np.int64)
    first_x, first_y = cell_x.min() - 1, cell_y.min() - 1
    n_cells = (cell_y.max() - first_y + 2, cell_x.max() - first_x + 2)
    spot_offset = rng.uniform(0.0, 1.0, (*n_cells, 2))
    spot_radius = spacing * rng.uniform(0.2, 0.45, n_cells)
    nearest = np.full(x.shape, np.inf)
    for step_y in (-1, 0, 1):
        for step_x in (-1, 0, 1):
            row, col = cell_y + step_y - first_y, cell_x + step_x - first_x
            centre_x = (cell_x + step_x + spot_offset[row, col, 0]) * spacing
            centre_y = (cell_y + step_y + spot_offset[row, col, 1]) * spacing
            distance = np.hypot(x - centre_x, y - centre_y) / spot_radius[row, col]
            np.minimum(nearest, distance, out=nearest)
    return np.clip(4.0 * (1.0 - nearest), 0.0, 1.0)


def _texture_field(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, base_colour: np.ndarray,
                   feature_scale: float) -> np.ndarray:
    """Base colour with a random plain/stripes/spots pattern over coordinates (x, y).

    `feature_scale` is the typical stripe period / spot spacing in the units of x and y.
    Returns (*x.shape, 3) float64 RGB.
    """
    kind = rng.integers(3)  # 0 plain, 1 stripes, 2 spots
    if kind == 0:
        return np.broadcast_to(base_colour, (*x.shape, 3)).copy()
    pattern_colour = base_colour * rng.uniform(0.35, 0.6) if rng.uniform() < 0.7 \
        else base_colour + (1.0 - base_colour) * rng.uniform(0.4, 0.7)
    if kind == 1:
        angle = rng.uniform(0.0, np.pi)
        phase = (np.cos(angle) * x + np.sin(angle) * y) * (2 * np.pi / (feature_scale * rng.uniform(0.6, 1.2)))
        coverage = np.clip(4.0 * (np.sin(phase + rng.uniform(0, 2 * np.pi)) - rng.uniform(-0.2, 0.4)), 0.0, 1.0)
    else:
        coverage = _spot_coverage(rng, x, y, feature_scale)
    return base_colour + coverage[..., None] * (pattern_colour - base_colour)


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear gradient between two fur-distribution colours over the meshgrid x, y.

    x, y: 2-D image coordinates in [0, 1]; the gradient runs in a random direction.
    Returns (*x.shape, 3) float64 RGB.
    """
    start_colour, end_colour = _fur_colour(rng), _fur_colour(rng)
    direction = _direction(rng.uniform(0.0, 2 * np.pi))
    ramp = direction[0] * (x - 0.5) + direction[1] * (y - 0.5)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    return start_colour + ramp[..., None] * (end_colour - start_colour)


def _place(rng: np.random.Generator, parts: list[_Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random similarity transform image = offset + linear @ object for the creature.

    Draws a rotation of at most MAX_ROTATION, a scale giving a bounding box area fraction
    in BBOX_AREA_FRACTION (smaller if the box would not fit), and an offset keeping the box
    IMAGE_MARGIN inside the unit image. The creature faces right (+x) in the image.
    Image coordinates have y pointing down. Returns linear (2, 2), offset (2,) and the
    creature's bounding box in image coordinates, (2, 2) rows (x, y) of its low and high corner.
    """
    rotation = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    cos, sin = np.cos(rotation), np.sin(rotation)
    orientation = np.array([[cos, -sin], [sin, cos]]) @ np.diag([1.0, -1.0])
    centres, radii = (np.concatenate(arrays) for arrays in zip(*(part.shape.extent() for part in parts)))
    placed = centres @ orientation.T
    low, high = (placed - radii[:, None]).min(axis=0), (placed + radii[:, None]).max(axis=0)
    size = high - low
    free_side = 1.0 - 2 * IMAGE_MARGIN
    scale = min(np.sqrt(rng.uniform(*BBOX_AREA_FRACTION) / np.prod(size)), free_side / size.max())
    offset = IMAGE_MARGIN - scale * low + rng.uniform(0.0, 1.0, 2) * np.maximum(free_side - scale * size, 0.0)
    return scale * orientation, offset, offset + scale * np.stack([low, high])


def _downsample_label(label: np.ndarray) -> np.ndarray:
    """Majority label of each SUPERSAMPLE x SUPERSAMPLE block: (S, S) uint8 -> (S/f, S/f) uint8.

    Ties go to the first pixel of the block in raster order.
    """
    size = label.shape[0] // SUPERSAMPLE
    blocks = label.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).transpose(0, 2, 1, 3).reshape(size, size, -1)
    votes = (blocks[..., :, None] == blocks[..., None, :]).sum(axis=-1)
    return np.take_along_axis(blocks, votes.argmax(axis=-1)[..., None], axis=-1)[..., 0]


def render_sample(rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one random creature image and its part labels.

    Returns the image, (image_size, image_size, 3) uint8 RGB, and the label map,
    (image_size, image_size) uint8 with values in 0..len(CLASSES)-1 (indices of CLASSES).
    """
    grid_size = SUPERSAMPLE * image_size
    coords = (np.arange(grid_size) + 0.5) / grid_size
    x, y = np.meshgrid(coords, coords)  # image coordinates in [0, 1], y down
    canvas = _background(rng, x, y)
    label = np.full((grid_size, grid_size), BACKGROUND, dtype=np.uint8)

    parts = _creature_parts(rng)
    linear, offset, bbox = _place(rng, parts)
    first, last = np.floor(bbox[0] * grid_size).astype(int), np.ceil(bbox[1] * grid_size).astype(int)
    window = (slice(first[1], last[1]), slice(first[0], last[0]))  # grid rows, columns holding the creature
    canvas_window, label_window = canvas[window], label[window]
    inverse = np.linalg.inv(linear)
    dx, dy = x[window] - offset[0], y[window] - offset[1]
    u, v = inverse[0, 0] * dx + inverse[0, 1] * dy, inverse[1, 0] * dx + inverse[1, 1] * dy  # object coordinates

    masks = [part.shape.mask(u, v) for part in parts]
    creature = np.logical_or.reduce(masks)
    fur = np.zeros_like(canvas_window)
    fur[creature] = _texture_field(rng, u[creature], v[creature], _fur_colour(rng), rng.uniform(0.35, 0.7)) \
        * (1.0 + TOP_LIGHT_GAIN * np.clip(v[creature], -1.0, 1.0))[:, None]
    for part, inside in zip(parts, masks):
        canvas_window[inside] = part.colour if part.colour is not None else part.shade * fur[inside]
        label_window[inside] = part.label

    image = canvas.reshape(image_size, SUPERSAMPLE, image_size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    image += rng.normal(0.0, PIXEL_NOISE_STD, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), _downsample_label(label)


def generate_dataset(out_dir: str | Path, seed: int = 0, n_unlabeled: int = 500, n_train: int = 20,
                     n_test: int = 20, image_size: int = 64, n_annotated: dict | None = None) -> None:
    """Write the synthetic dataset in the paper's layout under `out_dir` (created if missing).

    out_dir/meta.json: {"name", "classes", "ignore_label", "image_size", "seed", "counts", "notes"}
    out_dir/real/{train,test}/NNNN.png: RGB uint8 image; NNNN.npy: (H, W) uint8 label, 0..K-1
    out_dir/unlabeled/NNNN.png: RGB uint8 image
    out_dir/<name>/NNNN.png + .npy for each {name: count} of `n_annotated`: extra annotated sets
    beside real/ (stand-ins for the paper's annotated DDPM and GAN samples).
    Names are zero-padded to 4 digits from 0000 per split. Each split draws from its own
    stream, numpy.random.default_rng(SeedSequence([seed, SPLIT_INDEX[split]])) (an annotated set:
    SeedSequence([seed, 3, *its name's bytes])), so the same arguments give byte-identical files
    and one split's size does not affect another's images.
    """
    out_dir = Path(out_dir)
    counts = {"train": n_train, "test": n_test, "unlabeled": n_unlabeled}
    folders = {"train": out_dir / "real" / "train", "test": out_dir / "real" / "test", "unlabeled": out_dir / "unlabeled"}
    entropy = {split: [seed, index] for split, index in SPLIT_INDEX.items()}
    for name, count in (n_annotated or {}).items():
        counts[name], folders[name], entropy[name] = count, out_dir / name, [seed, 3, *name.encode()]
    for split, count in counts.items():
        folders[split].mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(np.random.SeedSequence(entropy[split]))
        for index in range(count):
            image, label = render_sample(rng, image_size)
            Image.fromarray(image).save(folders[split] / f"{index:04d}.png")
            if split != "unlabeled":
                np.save(folders[split] / f"{index:04d}.npy", label, allow_pickle=False)
    meta = {
        "name": DATASET_NAME,
        "classes": CLASSES,
        "ignore_label": IGNORE_LABEL,
        "image_size": image_size,
        "seed": seed,
        "counts": counts,
        "notes": ("Procedural four-legged creatures made of parts on smooth gradient backgrounds, generated "
                  "by ddpmseg.synthetic. All fur parts of a creature share one random colour and texture; "
                  "background colours come from the same distribution, so colour alone does not identify "
                  "parts. Labels are class indices into 'classes'."),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
