"""The paper's code path (yandex-research/ddpm-segmentation at 9a13776), re-implemented
faithfully as the benchmark's baseline; see ../shared/paper-reference.md.

- `paper_input`, `paper_noise`: the image as torchvision's ToTensor and `2 * x - 1` make it
  (contiguous channels-first), and `share_noise` from a generator on the run's device seeded
  with the run's seed; built here, not with our helpers, so the comparison catches a layout
  or noise difference of ours.
- `PaperFeatureExtractor`: forward hooks on `model.output_blocks[b]`; for each timestep one
  full forward pass (through the output layer) of a single image (batch 1) on
  q_sample(x0, t, shared noise); the hooked activations are cast to float32.
- `collect_features`: every activation upsampled to (S, S), bilinear, align_corners=False,
  and concatenated timestep-major, block-minor: (D, S, S) float32.
- `prepare_data`: X (N, D, S, S) float32 allocated up front and filled image by image, then
  X.permute(1, 0, 2, 3).reshape(D, -1).permute(1, 0) (a copy: twice the memory at its peak)
  and the ignored pixels dropped (another copy, while the first is alive).
- `train_paper_ensemble`: the members one after another, each an nn.Sequential
  Linear-ReLU-BN-Linear-ReLU-BN-Linear with N(0, 0.02) weights, trained from a shuffled
  DataLoader over the in-RAM matrix (batch 64, Adam 1e-3, cross-entropy) with the stop rule.
- `predict_paper`: per image, the (S*S, D) features through every member, argmax, mode.

The UNet runs in float32 here (the paper's runs in float16 on a GPU) so that its features
can be compared with ours exactly. The paper's relabelling of rare classes (< 20 pixels in an
image) is a label edit outside both routes; the benchmark trains both without it.
"""

import numpy as np
import torch
import torch.nn.functional as F


def paper_input(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 -> (1, 3, S, S) float32 in [-1, 1]: ToTensor (permute, contiguous, / 255),
    then the paper's `lambda x: 2 * x - 1`."""
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous().float().div(255)
    return (2 * tensor - 1)[None]


def paper_noise(image_size: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """`share_noise`: (1, 3, S, S) from a generator on `device` seeded with the run's seed."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(1, 3, image_size, image_size, generator=generator, device=device)


class PaperFeatureExtractor:
    """Decoder activations the paper's way: hooks, a full forward per timestep, batch 1."""

    def __init__(self, model, diffusion, blocks, timesteps, noise: torch.Tensor):
        self.model, self.diffusion, self.timesteps, self.noise = model, diffusion, list(timesteps), noise
        self.blocks = list(blocks)
        self.saved = []
        for b in self.blocks:
            model.output_blocks[b].register_forward_hook(lambda module, inputs, output: self.saved.append(output))

    @torch.no_grad()
    def __call__(self, x0: torch.Tensor) -> list:
        """x0: (1, 3, S, S) in [-1, 1] -> [(1, C, H, W) float32 for t in timesteps for b in blocks]."""
        activations = []
        for t in self.timesteps:
            t = torch.tensor([t])
            noisy = self.diffusion.q_sample(x0, t, noise=self.noise)
            self.saved.clear()
            self.model(noisy, self.diffusion._scale_timesteps(t))
            activations += [a.detach().float() for a in self.saved]
        return activations


def collect_features(activations: list, size: int) -> torch.Tensor:
    """[(1, C_k, H_k, W_k)] -> (sum C_k, size, size) float32, every map upsampled bilinearly."""
    resized = [F.interpolate(a, size=(size, size), mode="bilinear", align_corners=False)[0] for a in activations]
    return torch.cat(resized, dim=0)


def prepare_data(images, labels: torch.Tensor, extract, dim: int, ignore_label: int, n_extract: int):
    """The paper's `prepare_data`: every image's (D, S, S) features into one (N, D, S, S) float32
    matrix in RAM, reshaped to pixels (P, D) (a copy) with the ignored pixels dropped (another).

    images: N images; extract(image) -> (dim, S, S) float32; labels (N, S, S). Images from
    n_extract on repeat the features of image i % n_extract (for memory and speed only).
    Returns (pixels (P, D) float32, their labels (P,)).
    """
    size = labels.shape[-1]
    X = torch.zeros((len(images), dim, size, size), dtype=torch.float)
    for i, image in enumerate(images):
        X[i] = extract(image) if i < n_extract else X[i % n_extract]
    X = X.permute(1, 0, 2, 3).reshape(dim, -1).permute(1, 0)
    y = labels.flatten()
    return X[y != ignore_label], y[y != ignore_label]


class TrainData(torch.utils.data.Dataset):
    """The paper's `trainData`: (features, label) of one pixel per item."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        return self.X[index], self.y[index]


def pixel_classifier(num_classes: int, dim: int) -> torch.nn.Sequential:
    """DatasetGAN's MLP: (128, 32) hidden units below 30 classes, else (256, 128)."""
    h1, h2 = (128, 32) if num_classes < 30 else (256, 128)
    net = torch.nn.Sequential(
        torch.nn.Linear(dim, h1), torch.nn.ReLU(), torch.nn.BatchNorm1d(num_features=h1),
        torch.nn.Linear(h1, h2), torch.nn.ReLU(), torch.nn.BatchNorm1d(num_features=h2),
        torch.nn.Linear(h2, num_classes),
    )
    for module in net:
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, 0.0, 0.02)
            torch.nn.init.constant_(module.bias, 0.0)
    return net


def train_paper_ensemble(X: torch.Tensor, y: torch.Tensor, num_classes: int, *, n_members: int, seed: int,
                         max_epochs: int = 100, early_stop_epoch: int = 4, patience: int = 50,
                         max_batches: int | None = None):
    """The members trained one after another from the in-RAM matrix; returns (members in eval
    mode, member-pixels trained). `max_batches` ends each member after that many batches."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(TrainData(X, y), batch_size=64, shuffle=True)
    members, member_pixels = [], 0
    for _ in range(n_members):
        net = pixel_classifier(num_classes, X.shape[1]).train()
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
        best_loss, break_count, batches, stop = float("inf"), 0, 0, False
        for epoch in range(max_epochs):
            for X_batch, y_batch in loader:
                if len(y_batch) < 2:  # BatchNorm needs two samples
                    continue
                optimizer.zero_grad()
                loss = criterion(net(X_batch), y_batch.long())
                loss.backward()
                optimizer.step()
                batches += 1
                member_pixels += len(y_batch)
                if epoch >= early_stop_epoch:
                    if loss.item() < best_loss:
                        best_loss, break_count = loss.item(), 0
                    else:
                        break_count += 1
                    stop = break_count > patience
                if stop or batches == max_batches:
                    break
            if stop or batches == max_batches:
                break
        members.append(net.eval())
    return members, member_pixels


@torch.no_grad()
def predict_paper(members, features: torch.Tensor) -> torch.Tensor:
    """features (D, S, S) of one image -> (S, S) int64: each member's argmax, then the mode."""
    d, size, _ = features.shape
    pixels = features.reshape(d, -1).T
    votes = torch.stack([net(pixels).argmax(dim=1) for net in members])
    return torch.mode(votes, dim=0).values.reshape(size, size)
