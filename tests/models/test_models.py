"""The model zoo against the paper's golden numbers, parametrized over the registry."""

from __future__ import annotations

import pytest
import torch
import torchvision

from reslab.models import complexity, create_model, get_model_info, list_models
from reslab.models.blocks import basic_block, bottleneck_block
from reslab.models.shortcuts import ZeroPadIdentity

CIFAR_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}  # Section 4.2 / Table 6
IMAGENET_MACS_G = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}  # Table 1


@pytest.mark.parametrize("name", [n for n in list_models() if n != "cifar_plain1202" and n != "cifar_resnet1202"])
def test_forward_backward_shapes_and_finite(name: str) -> None:
    info = get_model_info(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    size = (3, 32, 32) if info.family == "cifar" else (3, 64, 64)  # global pooling accepts any size
    x = torch.randn(2, *size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_resnet1202_forward_backward_on_cpu() -> None:
    model = create_model("cifar_resnet1202")
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert torch.isfinite(model.stem[0].weight.grad).all()


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS_M))
def test_cifar_parameters_match_paper_and_plain_equals_residual(depth: int) -> None:
    residual = complexity(create_model(f"cifar_resnet{depth}"), (3, 32, 32))
    plain = complexity(create_model(f"cifar_plain{depth}"), (3, 32, 32))
    assert residual.parameters == pytest.approx(CIFAR_PARAMS_M[depth] * 1e6, rel=0.02)
    assert plain.parameters == residual.parameters  # option A adds no parameters
    assert len(create_model(f"cifar_resnet{depth}").blocks) == 3 * (depth - 2) // 6


@pytest.mark.parametrize("depth", sorted(IMAGENET_MACS_G))
def test_imagenet_option_b_parameters_equal_torchvision(depth: int) -> None:
    ours = complexity(create_model(f"resnet{depth}"), (3, 224, 224))
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    assert ours.parameters == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("depth", sorted(IMAGENET_MACS_G))
def test_imagenet_multiply_adds_match_table1(depth: int) -> None:
    ours = complexity(create_model(f"resnet{depth}"), (3, 224, 224))
    assert ours.multiply_adds == pytest.approx(IMAGENET_MACS_G[depth] * 1e9, rel=0.05)


def test_resnet34_parameters_grow_from_option_a_to_c() -> None:
    counts = {s: complexity(create_model("resnet34", shortcut=s), (3, 224, 224)).parameters for s in "ABC"}
    assert counts["C"] > counts["B"] > counts["A"]
    assert counts["A"] == complexity(create_model("plain34"), (3, 224, 224)).parameters


def test_the_any_depth_builder_accepts_6n_plus_2() -> None:
    model = create_model("cifar_resnet", depth=74)
    assert len(model.blocks) == 36
    assert create_model("cifar_plain", depth=8)(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: create_model("resnet35"), "valid models: cifar_resnet"),
        (lambda: create_model("cifar_resnet20", shortcut="D"), "valid options: A, B, C"),
        (
            lambda: create_model("cifar_resnet", depth=21),
            r"6n\+2 with n >= 1 \(e\.g\. 20, 32, 44, 56, 110, 1202\); got 21",
        ),
        (lambda: create_model("cifar_resnet"), "needs depth="),
        (lambda: create_model("cifar_plain20", shortcut="A"), "plain net and has no shortcut"),
        (lambda: create_model("cifar_resnet20", num_classes=0), "num_classes"),
    ],
)
def test_bad_arguments_name_the_problem_and_the_valid_choices(make, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make()


def test_plain_blocks_have_no_shortcut_and_residual_blocks_do() -> None:
    assert all(b.is_plain for b in create_model("cifar_plain20").blocks)
    assert not any(b.is_plain for b in create_model("cifar_resnet20").blocks)


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("block_fn", [basic_block, bottleneck_block])
def test_a_block_with_zero_last_gamma_is_the_identity(block_fn, shortcut: str) -> None:
    torch.manual_seed(0)
    block = block_fn(64, 64, 1, shortcut)
    torch.nn.init.zeros_(block.last_bn.weight)
    x = torch.relu(torch.randn(4, 64, 8, 8))  # a block's input is the previous block's ReLU output
    assert torch.equal(block(x), x)


def test_option_a_subsamples_and_zero_pads() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    y = ZeroPadIdentity(2, 5, stride=2)(x)
    assert y.shape == (1, 5, 2, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2])
    assert not y[:, 2:].any()
    assert sum(p.numel() for p in create_model("cifar_resnet20", shortcut="A").parameters()) == 269_722


def test_option_c_projects_every_shortcut_and_b_only_where_shapes_change() -> None:
    def projections(model):
        return sum(isinstance(b.shortcut, torch.nn.Sequential) for b in model.blocks)

    assert projections(create_model("resnet34", shortcut="C")) == 16
    assert projections(create_model("resnet34", shortcut="B")) == 3
    assert projections(create_model("resnet50", shortcut="B")) == 4  # conv2_1 widens 64 -> 256 too


def test_he_initialisation_and_bias_free_convolutions() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    conv = model.stages[3][0].residual[3]  # 3x3, 512 -> 512: fan_out = 9 * 512
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 512)) ** 0.5, rel=0.02)


def _torchvision_name(key: str) -> str:
    """reslab's state-dict name -> torchvision's ResNet name (stem -> conv1/bn1, stages -> layer1..4, each
    block's residual branch -> conv1/bn1/conv2/bn2[/conv3/bn3], the projection shortcut -> downsample)."""
    import re

    key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
    match = re.fullmatch(r"stages\.(\d)\.(\d+)\.(residual|shortcut)\.(\d)\.(.+)", key)
    if match is None:
        return key  # fc.weight, fc.bias: the same name
    stage, block, branch, index, rest = match.groups()
    residual = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    name = residual[index] if branch == "residual" else f"downsample.{index}"
    return f"layer{int(stage) + 1}.{block}.{name}.{rest}"


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_torchvision_weights_renamed_into_reslabs_net_give_the_same_outputs(depth: int) -> None:
    """A second, independent implementation guarding the zoo: torchvision's ResNet (random weights and BN
    statistics, nothing downloaded) loaded into reslab's option-B net by renaming alone predicts the same.
    torchvision's bottleneck puts the stride on the 3x3 convolution, the paper's on the first 1x1 (README,
    Models): for 50 the strides are moved to torchvision's places after loading, which changes no weight."""
    torch.manual_seed(depth)
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # BN in eval mode with statistics that matter
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    ours = create_model(f"resnet{depth}").eval()
    theirs = reference.state_dict()
    renamed = {key: _torchvision_name(key) for key in ours.state_dict()}
    assert sorted(renamed.values()) == sorted(theirs)  # every tensor named once, none left over
    ours.load_state_dict({key: theirs[name] for key, name in renamed.items()})
    if depth >= 50:
        for block in ours.blocks:
            first, middle = block.residual[0], block.residual[3]
            first.stride, middle.stride = middle.stride, first.stride
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = reference(images), ours(images)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (got - expected).abs().max()
    assert torch.equal(got.argmax(1), expected.argmax(1))
