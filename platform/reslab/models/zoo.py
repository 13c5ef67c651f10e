"""One thin builder per row of the paper's tables, each registered under its function name.

Docstrings give the row and the sizes a correct build must match (checked by the golden tests); the paper's
errors for each net are in `paper.py`.
A new architecture is one more function here, decorated with `@register_model`.
"""

from __future__ import annotations

from .cifar import cifar_plain as _cifar_plain
from .cifar import cifar_resnet as _cifar_resnet
from .imagenet import imagenet_net
from .registry import register_model
from .resnet import ResNet


@register_model("cifar")
def cifar_resnet(depth: int, *, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """A CIFAR ResNet of any 6n+2 depth (Section 4.2)."""
    return _cifar_resnet(depth, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", plain=True)
def cifar_plain(depth: int, *, num_classes: int = 10) -> ResNet:
    """A CIFAR plain net of any 6n+2 depth (Section 4.2)."""
    return _cifar_plain(depth, num_classes=num_classes)


@register_model("cifar", depth=20)
def cifar_resnet20(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-20 (Table 6): 0.27M parameters."""
    return _cifar_resnet(20, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=32)
def cifar_resnet32(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-32 (Table 6): 0.46M parameters."""
    return _cifar_resnet(32, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=44)
def cifar_resnet44(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-44 (Table 6): 0.66M parameters."""
    return _cifar_resnet(44, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=56)
def cifar_resnet56(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-56 (Table 6): 0.85M parameters."""
    return _cifar_resnet(56, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=110)
def cifar_resnet110(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-110 (Table 6): 1.7M parameters."""
    return _cifar_resnet(110, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=1202)
def cifar_resnet1202(*, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """ResNet-1202 (Table 6): 19.4M parameters."""
    return _cifar_resnet(1202, shortcut=shortcut, num_classes=num_classes)


@register_model("cifar", depth=20, plain=True)
def cifar_plain20(*, num_classes: int = 10) -> ResNet:
    """Plain-20 (Fig. 6): the ResNet-20 stack without shortcuts, 0.27M parameters."""
    return _cifar_plain(20, num_classes=num_classes)


@register_model("cifar", depth=32, plain=True)
def cifar_plain32(*, num_classes: int = 10) -> ResNet:
    """Plain-32 (Fig. 6): the ResNet-32 stack without shortcuts, 0.46M parameters."""
    return _cifar_plain(32, num_classes=num_classes)


@register_model("cifar", depth=44, plain=True)
def cifar_plain44(*, num_classes: int = 10) -> ResNet:
    """Plain-44 (Fig. 6): the ResNet-44 stack without shortcuts, 0.66M parameters."""
    return _cifar_plain(44, num_classes=num_classes)


@register_model("cifar", depth=56, plain=True)
def cifar_plain56(*, num_classes: int = 10) -> ResNet:
    """Plain-56 (Fig. 6): the ResNet-56 stack without shortcuts, 0.85M parameters."""
    return _cifar_plain(56, num_classes=num_classes)


@register_model("cifar", depth=110, plain=True)
def cifar_plain110(*, num_classes: int = 10) -> ResNet:
    """Plain-110 (Fig. 6): the ResNet-110 stack without shortcuts, 1.7M parameters."""
    return _cifar_plain(110, num_classes=num_classes)


@register_model("cifar", depth=1202, plain=True)
def cifar_plain1202(*, num_classes: int = 10) -> ResNet:
    """Plain-1202 (Fig. 6): the ResNet-1202 stack without shortcuts, 19.4M parameters."""
    return _cifar_plain(1202, num_classes=num_classes)


@register_model("imagenet", depth=18)
def resnet18(*, shortcut: str = "B", num_classes: int = 1000) -> ResNet:
    """ResNet-18 (Table 1, Table 3): 11,689,512 parameters with option B, 1.8 G multiply-adds."""
    return imagenet_net(18, shortcut, num_classes)


@register_model("imagenet", depth=34)
def resnet34(*, shortcut: str = "B", num_classes: int = 1000) -> ResNet:
    """ResNet-34 (Table 1, Table 3): 21,797,672 parameters with option B, 3.6 G multiply-adds."""
    return imagenet_net(34, shortcut, num_classes)


@register_model("imagenet", depth=50)
def resnet50(*, shortcut: str = "B", num_classes: int = 1000) -> ResNet:
    """ResNet-50 (Table 1, Table 3): 25,557,032 parameters with option B, 3.8 G multiply-adds."""
    return imagenet_net(50, shortcut, num_classes)


@register_model("imagenet", depth=101)
def resnet101(*, shortcut: str = "B", num_classes: int = 1000) -> ResNet:
    """ResNet-101 (Table 1, Table 3): 44,549,160 parameters with option B, 7.6 G multiply-adds."""
    return imagenet_net(101, shortcut, num_classes)


@register_model("imagenet", depth=152)
def resnet152(*, shortcut: str = "B", num_classes: int = 1000) -> ResNet:
    """ResNet-152 (Table 1, Table 3): 60,192,808 parameters with option B, 11.3 G multiply-adds."""
    return imagenet_net(152, shortcut, num_classes)


@register_model("imagenet", depth=18, plain=True)
def plain18(*, num_classes: int = 1000) -> ResNet:
    """Plain-18 (Table 1 without shortcuts; Table 2)."""
    return imagenet_net(18, None, num_classes)


@register_model("imagenet", depth=34, plain=True)
def plain34(*, num_classes: int = 1000) -> ResNet:
    """Plain-34 (Table 1 without shortcuts; Table 2)."""
    return imagenet_net(34, None, num_classes)


@register_model("imagenet", depth=50, plain=True)
def plain50(*, num_classes: int = 1000) -> ResNet:
    """Plain-50 (Table 1 without shortcuts)."""
    return imagenet_net(50, None, num_classes)


@register_model("imagenet", depth=101, plain=True)
def plain101(*, num_classes: int = 1000) -> ResNet:
    """Plain-101 (Table 1 without shortcuts)."""
    return imagenet_net(101, None, num_classes)


@register_model("imagenet", depth=152, plain=True)
def plain152(*, num_classes: int = 1000) -> ResNet:
    """Plain-152 (Table 1 without shortcuts)."""
    return imagenet_net(152, None, num_classes)
