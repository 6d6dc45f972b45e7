"""torchvision's DeepLabV3 trained on ensemble-labelled images (the paper's `train_deeplab.py`).

The paper: `deeplabv3_resnet101` with an ImageNet-pretrained backbone, ImageNet-normalised
inputs, batch 8, 20 epochs, Adam, cross-entropy that skips the ignore label, and the epoch
with the best mIoU on the real train images kept. The backbone (`BACKBONES`) is a setting; its
weights come from a file in torchvision's classification layout (e.g. `resnet101-63fe2227.pth`
from download.pytorch.org), or the backbone starts from random weights.

`input_size` (ours, not the paper's, whose images are 256x256): the side the images are resized to
(bilinear) before DeepLab, whose logits are resized back to the image size, so that the loss, the
labels and the uncertainty stay at the dataset's resolution. DeepLab's output stride (8 for the
ResNets, 16 for MobileNet) leaves a 48x48 image a 3x3 map; at input_size 192 it is 12x12. Its
default (`ddpmseg.plan.distill.deeplab_auto_input_size`) is the image size, at least 128.
"""

import copy
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from ddpmseg.errors import CheckpointError
from ddpmseg.metrics import mean_iou
from ddpmseg.model_input import model_input

log = logging.getLogger(__name__)

BACKBONES = {  # setting -> torchvision builder
    "resnet50": torchvision.models.segmentation.deeplabv3_resnet50,
    "resnet101": torchvision.models.segmentation.deeplabv3_resnet101,
    "mobilenet_v3_large": torchvision.models.segmentation.deeplabv3_mobilenet_v3_large,
}


def build_deeplab(backbone: str, num_classes: int, backbone_weights=None, seed: int = 0) -> torch.nn.Module:
    """DeepLabV3 (no auxiliary head) with `num_classes` outputs, initialised from `seed`, its
    backbone loaded from `backbone_weights` (a torchvision classification state_dict file:
    the classifier's tensors are dropped, MobileNet's `features.` prefix is stripped)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown DeepLab backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    model = BACKBONES[backbone](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    if backbone_weights is not None:
        state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
        state = {key.removeprefix("features."): value for key, value in state.items()}
        expected = model.backbone.state_dict()
        for key, tensor in expected.items():
            if key not in state or state[key].shape != tensor.shape:
                found = "absent" if key not in state else tuple(state[key].shape)
                raise CheckpointError(f"{backbone_weights}: tensor {key!r} is {found} there, DeepLab's {backbone} backbone "
                                      f"needs {tuple(tensor.shape)}; give torchvision's {backbone} ImageNet weights")
        model.backbone.load_state_dict({key: state[key] for key in expected})
    return model


def deeplab_input(images: np.ndarray, input_size=None, device: str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, R, R) float32, ImageNet-normalised and resized (bilinear) to
    R = `input_size` (None: R = S)."""
    x = model_input(images, "imagenet").to(device)
    if input_size is not None and input_size != x.shape[-1]:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    return x


def deeplab_logits(model: torch.nn.Module, images: np.ndarray, input_size=None, device: str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 -> logits (B, classes, S, S): DeepLab run on `deeplab_input` and its
    logits resized back to S x S (bilinear)."""
    side = images.shape[1]
    logits = model(deeplab_input(images, input_size, device))["out"]
    if logits.shape[-1] != side:
        logits = F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False)
    return logits


def recalibrate_batchnorm(model: torch.nn.Module, images: np.ndarray, batch_size: int = 8, input_size=None,
                          device: str = "cpu") -> None:
    """Sets every BatchNorm's running mean and variance to the plain average of its batch
    statistics over `images` (N, S, S, 3) uint8 in full batches of `batch_size`, in order
    ("precise BN", torch's `swa_utils.update_bn`), in place of the exponential average that lags
    behind the weights: torchvision's MobileNetV3 keeps it with momentum 0.01, so a backbone
    trained from scratch for a few hundred steps is scored with statistics of much earlier weights."""
    batches = (deeplab_input(images[start : start + batch_size], input_size, device)
               for start in range(0, len(images) - batch_size + 1, batch_size))
    torch.optim.swa_utils.update_bn(batches, model)


@torch.no_grad()
def predict_deeplab(model: torch.nn.Module, images: np.ndarray, batch_size: int = 8, device: str = "cpu",
                    input_size=None) -> tuple:
    """(N, S, S, 3) uint8 -> labels (N, S, S) uint8 (argmax) and uncertainty (N, S, S) float32
    (entropy of the softmax, nats); DeepLab run at `input_size` (None: at S)."""
    model.eval().to(device)
    labels = np.zeros(images.shape[:3], np.uint8)
    entropy = np.zeros(images.shape[:3], np.float32)
    for start in range(0, len(images), batch_size):
        logits = deeplab_logits(model, images[start : start + batch_size], input_size, device)
        p = torch.softmax(logits.float(), dim=1)
        labels[start : start + len(p)] = p.argmax(dim=1).cpu().numpy()
        entropy[start : start + len(p)] = (-(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)).cpu().numpy()
    return labels, entropy


def train_deeplab(images: np.ndarray, labels: np.ndarray, valid_images: np.ndarray, valid_labels: np.ndarray, *,
                  num_classes: int, ignore_label: int, backbone: str, backbone_weights=None, batch_size: int = 8,
                  epochs: int = 20, lr: float = 1e-3, seed: int = 0, convention: str = "paper",
                  input_size=None, recalibrate: bool = False, device: str = "cpu") -> tuple:
    """Trains DeepLabV3 on images (N, S, S, 3) uint8 with labels (N, S, S) uint8, run at
    `input_size` (None: at S), shuffled by `seed` (incomplete last batches dropped: BatchNorm
    needs two images); after every epoch (its BatchNorm statistics recomputed on the training
    images first where `recalibrate`, see `recalibrate_batchnorm`) it
    scores the valid images (the real train split). Returns (state_dict of the best epoch,
    history [{epoch, batches, mean_loss, valid_miou, seconds}], best epoch)."""
    model = build_deeplab(backbone, num_classes, backbone_weights, seed).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    target = torch.from_numpy(labels.astype(np.int64))
    history, best, best_state, start = [], -1.0, None, time.perf_counter()
    n_batches = len(images) // batch_size
    if n_batches == 0:
        raise ValueError(f"{len(images)} training images, fewer than one batch of {batch_size}")
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        permutation = torch.randperm(len(images), generator=order).numpy()
        for b in range(n_batches):
            chosen = np.sort(permutation[b * batch_size : (b + 1) * batch_size])
            logits = deeplab_logits(model, images[chosen], input_size, device)
            loss = F.cross_entropy(logits, target[chosen].to(device), ignore_index=ignore_label)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        if recalibrate:
            recalibrate_batchnorm(model, images, batch_size, input_size, device)
        predicted, _ = predict_deeplab(model, valid_images, batch_size, device, input_size)
        miou = mean_iou(predicted, valid_labels, num_classes, ignore_label, convention)
        history.append(dict(epoch=epoch, batches=n_batches, mean_loss=float(np.mean(losses)), valid_miou=miou,
                            seconds=time.perf_counter() - start))
        log.info("epoch %d: loss %.4f, mIoU on the real train images %.4f", epoch, history[-1]["mean_loss"], miou)
        if miou > best:
            best, best_epoch = miou, epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return best_state, history, best_epoch
