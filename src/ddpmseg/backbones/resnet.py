"""The ResNet of an `arch` setting ({block: bottleneck | basic, blocks: [n1, n2, n3, n4], width}),
made of timm's residual blocks under torchvision's parameter names: building it, the shapes of
its block inputs, and the arch a state_dict's tensors show (the SwAV source's model,
`ddpmseg.backbones.swav`). Importing it needs no torch; `resnet` imports torch and timm itself.

RN50 is {block: bottleneck, blocks: [3, 4, 6, 3], width: 64}; SwAV's RN50w2 the same with width
128 (every width doubled, the stem's too).
"""

import re

EXPANSION = {"bottleneck": 4, "basic": 1}  # a block's output channels / its planes


def _halve(n: int) -> int:
    """Side after a stride-2 conv or pool with 'same' padding (ResNet's 7x7/3x3 convs, its max-pool)."""
    return (n - 1) // 2 + 1


def block_inputs(arch: dict, image_size: int) -> dict:
    """{'layer<i>.<j>': (channels, resolution)}: the input of every block, in forward order.

    The stem (stride-2 conv, stride-2 max-pool) gives image_size / 4 at `width` channels; block 0
    of layer i > 1 (stride 2) takes the previous layer's output, its later blocks take layer i's
    own output at half the resolution. Layer i's output has width * 2**(i-1) * expansion channels.
    """
    expansion = EXPANSION[arch["block"]]
    channels, resolution = arch["width"], _halve(_halve(image_size))
    table = {}
    for i, n_blocks in enumerate(arch["blocks"], start=1):
        out_channels = arch["width"] * 2 ** (i - 1) * expansion
        for j in range(n_blocks):
            table[f"layer{i}.{j}"] = (channels, resolution)
            if j == 0:
                channels, resolution = out_channels, resolution if i == 1 else _halve(resolution)
    return table


def resnet(arch: dict):
    """The ResNet of `arch` without a classifier: an nn.Sequential whose children and tensors
    have torchvision's names (conv1, bn1, act1, maxpool, layer1..layer4 of timm's blocks, then
    avgpool and flatten), so model(x) gives the (B, C) pooled output, C = 8 * width * expansion.

    timm's `ResNet` class fixes its 7x7 stem at 64 channels, so the stages come from its
    `make_blocks` and the stem is `width` wide, as in SwAV's wide ResNets. Convolutions start
    from kaiming-normal (fan_out) weights and every BatchNorm from weight 1, bias 0, as in
    torchvision's and SwAV's ResNets (no zero-initialised last BatchNorm).
    """
    from collections import OrderedDict

    import torch.nn as nn
    from timm.models.resnet import BasicBlock, Bottleneck, make_blocks

    width = arch["width"]
    block = {"bottleneck": Bottleneck, "basic": BasicBlock}[arch["block"]]
    stages, _ = make_blocks((block,) * 4, (width, 2 * width, 4 * width, 8 * width), tuple(arch["blocks"]), width)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)),
        ("bn1", nn.BatchNorm2d(width)),
        ("act1", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        *stages,
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
    ]))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def checkpoint_arch(state: dict) -> dict | None:
    """The `arch` a backbone state_dict's tensors show (None when it holds no ResNet stem)."""
    if "conv1.weight" not in state:
        return None
    blocks = [len({m.group(1) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}) for i in range(1, 5)]
    return {"block": "bottleneck" if "layer1.0.conv3.weight" in state else "basic", "blocks": blocks,
            "width": int(state["conv1.weight"].shape[0])}
