"""Exact reformulations of slow generator layers, for inference only.

A trained generator is rewritten once, after its weights are loaded, into a network that
computes the same function (up to float rounding) with fewer passes over memory and with
convolutions shaped the way oneDNN runs fast:

- **The output convolution after the last PixelShuffle** (the 10 m preset's ``64 → 4`` 9×9
  conv at the HR grid) runs in its polyphase form (:mod:`srgan.models.polyphase`; training
  computes it that way too) with the rearranged weights computed once instead of per call.
- **Residual channel attention** (RCAB): ``x + s·(y·gate(y))`` becomes one ``addcmul``
  instead of three element-wise passes, the gate's 1×1 convolutions on a 1×1 map become
  matrix-vector products (torch sends a 1×1 conv on a 1×1 map to its slow reference kernel),
  and its global average pool a matrix product (torch's NHWC mean is an order of magnitude
  slower in bfloat16).
- **Activations after a convolution** (the blocks' ReLUs, one-slope PReLUs, also those after
  a PixelShuffle) are fused into it: on the CPU oneDNN applies them as it writes the
  convolution's output (:class:`ConvActivation`); elsewhere they run in place.
- **Scaled residuals** (EDSR blocks): ``x + s·y`` becomes one ``add(alpha=s)``.

Other generator families pass through unchanged. ``tests/srgan/test_inference_graph.py``
checks every rewrite against the original network.

Example::

    fast = prepare_for_inference(generator)            # float32, NHWC
    torch.testing.assert_close(fast(x), generator(x))  # same function
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srgan.models.bicubic_skip import BicubicResidual, PolyphaseBicubic
from srgan.models.blocks import RCAB, ChannelAttention, ResBlock
from srgan.models.polyphase import is_same_conv, polyphase_weight, preshuffle_prelu
from srgan.models.srresnet import SRResNet


class ShuffledConv(nn.Module):
    """``conv(pixel_shuffle(z, f))`` as ``pixel_shuffle(conv'(z), f)`` with the polyphase
    weights computed once (:mod:`srgan.models.polyphase`).

    Shape:
        ``(B, C·f², h, w) → (B, out, h·f, w·f)``, as ``conv`` on the shuffled input.
    """

    def __init__(self, conv: nn.Conv2d, factor: int) -> None:
        super().__init__()
        weight = polyphase_weight(conv.weight.detach(), factor)
        self.conv = nn.Conv2d(
            weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2
        ).to(weight.device, weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            assert self.conv.bias is not None
            if conv.bias is None:
                self.conv.bias.zero_()
            else:
                self.conv.bias.copy_(conv.bias.detach().repeat_interleave(factor * factor))
        self.factor = factor

    def forward(self, z: Tensor) -> Tensor:
        return F.pixel_shuffle(self.conv(z), self.factor)


class PreshufflePReLU(nn.Module):
    """A PReLU that followed a ``PixelShuffle(factor)``, applied before it."""

    def __init__(self, prelu: nn.PReLU, factor: int) -> None:
        super().__init__()
        self.prelu, self.factor = prelu, factor

    def forward(self, x: Tensor) -> Tensor:
        return preshuffle_prelu(x, self.prelu, self.factor)


def _pointwise_conv() -> Any:
    """oneDNN's convolution with a fused activation, where this torch build has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


_POINTWISE_CONV = _pointwise_conv()


class ConvActivation(nn.Module):
    """``act(conv(x))`` for a ReLU or a leaky ReLU: on the CPU one oneDNN convolution with the
    activation applied as each output value is written (one pass over the output instead of
    two); elsewhere the convolution and then the activation in place.

    Args:
        conv: A zero-padded convolution with numeric padding.
        slope: Slope of the negative part (0 for a ReLU).
    """

    def __init__(self, conv: nn.Conv2d, slope: float = 0.0) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only zero-padded convolutions with numeric padding fuse")
        self.conv, self.slope = conv, slope

    def forward(self, x: Tensor) -> Tensor:
        c = self.conv
        if _POINTWISE_CONV is not None and x.device.type == "cpu":
            attr, scalars = ("relu", []) if self.slope == 0.0 else ("leaky_relu", [self.slope])
            return cast(
                "Tensor",
                _POINTWISE_CONV(
                    x,
                    c.weight,
                    c.bias,
                    c.padding,
                    c.stride,
                    c.dilation,
                    c.groups,
                    attr,
                    scalars,
                    "",
                ),
            )
        return F.leaky_relu_(c(x), self.slope) if self.slope else torch.relu_(c(x))


def _fused_activations(sequence: nn.Sequential) -> nn.Sequential:
    """``sequence`` with each one-slope PReLU fused into the convolution before it, also across
    a PixelShuffle (an element-wise function with one slope commutes with the shuffle)."""
    layers: list[nn.Module] = []
    for layer in sequence:
        one_slope = isinstance(layer, nn.PReLU) and layer.num_parameters == 1
        shuffled = len(layers) >= 2 and isinstance(layers[-1], nn.PixelShuffle)
        conv_at = -2 if shuffled else -1
        if one_slope and len(layers) >= -conv_at and type(layers[conv_at]) is nn.Conv2d:
            slope = float(cast("nn.PReLU", layer).weight.detach().reshape(()))
            layers[conv_at] = ConvActivation(cast("nn.Conv2d", layers[conv_at]), slope)
            continue
        layers.append(layer)
    return nn.Sequential(*layers)


class FastChannelAttention(nn.Module):
    """:class:`~srgan.models.blocks.ChannelAttention`'s gate as matrix-vector products.

    Returns the gate ``(B, C, 1, 1)`` times ``scale``, not the gated input.
    """

    def __init__(self, attention: ChannelAttention, scale: float) -> None:
        super().__init__()
        squeeze, expand = cast("nn.Conv2d", attention.gate[1]), cast("nn.Conv2d", attention.gate[3])
        self.squeeze = nn.Linear(squeeze.in_channels, squeeze.out_channels)
        self.expand = nn.Linear(expand.in_channels, expand.out_channels)
        for linear, conv in ((self.squeeze, squeeze), (self.expand, expand)):
            with torch.no_grad():
                linear.weight.copy_(conv.weight.detach().flatten(1))
                assert linear.bias is not None and conv.bias is not None
                linear.bias.copy_(conv.bias.detach())
            linear.to(conv.weight.device, conv.weight.dtype)
        self.scale = scale

    def forward(self, y: Tensor) -> Tensor:
        # the spatial mean as a matrix product: torch's NHWC mean reduction is an order of
        # magnitude slower in bfloat16 (it widens the whole map to float32 first)
        b, c, h, w = y.shape
        weights = y.new_full((b, 1, h * w), 1.0 / (h * w))
        pooled = torch.matmul(weights, y.permute(0, 2, 3, 1).reshape(b, h * w, c))[:, 0]
        gate = torch.sigmoid(self.expand(torch.relu_(self.squeeze(pooled))))
        return (gate * self.scale)[:, :, None, None]


class FastRCAB(nn.Module):
    """:class:`~srgan.models.blocks.RCAB` with one ``addcmul`` for gate, scale and skip."""

    def __init__(self, block: RCAB) -> None:
        super().__init__()
        self.conv1 = ConvActivation(cast("nn.Conv2d", block.body[0]))
        self.conv2 = block.body[2]
        self.gate = FastChannelAttention(cast("ChannelAttention", block.body[3]), block.res_scale)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return torch.addcmul(x, y, self.gate(y))


class FastResBlock(nn.Module):
    """:class:`~srgan.models.blocks.ResBlock` with the scaled skip as one ``add``."""

    def __init__(self, block: ResBlock) -> None:
        super().__init__()
        self.conv1 = ConvActivation(cast("nn.Conv2d", block.body[0]))
        self.conv2 = block.body[2]
        self.res_scale = block.res_scale

    def forward(self, x: Tensor) -> Tensor:
        return torch.add(x, self.conv2(self.conv1(x)), alpha=self.res_scale)


_BLOCK_REWRITES: dict[type[nn.Module], type[nn.Module]] = {RCAB: FastRCAB, ResBlock: FastResBlock}


def _rewrite_srresnet(net: SRResNet) -> None:
    net.body = nn.Sequential(
        *(_BLOCK_REWRITES[type(b)](b) if type(b) in _BLOCK_REWRITES else b for b in net.body)
    )
    stages = list(net.upsampler)
    if (
        len(stages) >= 3
        and isinstance(stages[-2], nn.PixelShuffle)
        and isinstance(stages[-1], nn.PReLU)
        and is_same_conv(net.tail)
    ):
        factor = stages[-2].upscale_factor
        one_slope = stages[-1].num_parameters == 1  # then fused into the conv before it
        stages = [*stages[:-2], stages[-1] if one_slope else PreshufflePReLU(stages[-1], factor)]
        net.tail = ShuffledConv(net.tail, factor)  # type: ignore[assignment]
        net.polyphase_tail = False  # the rewritten layers already are the polyphase form
    net.upsampler = _fused_activations(nn.Sequential(*stages))  # type: ignore[assignment]
    net.head = _fused_activations(net.head)


class InferenceRuntime(nn.Module):
    """The rewritten network in its weight type, seen from float32 on both sides.

    A bicubic skip (:class:`~srgan.models.bicubic_skip.BicubicResidual`) is computed in
    float32 from the float32 input and only the learned residual in the weight type: in
    bfloat16 the interpolated image itself would lose its last bits (8 mantissa bits are
    about 0.4 % of the reflectance). It runs as a polyphase convolution
    (:class:`~srgan.models.bicubic_skip.PolyphaseBicubic`).

    Shape:
        ``(B, C, h, w)`` float32 → ``(B, C, h·scale, w·scale)`` float32.
    """

    def __init__(
        self, net: nn.Module, dtype: torch.dtype, bicubic: PolyphaseBicubic | None
    ) -> None:
        super().__init__()
        self.net, self.dtype, self.bicubic = net, dtype, bicubic

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x.to(self.dtype)).float()
        return out if self.bicubic is None else out.add_(self.bicubic(x))


def prepare_for_inference(
    generator: nn.Module, dtype: torch.dtype = torch.float32, channels_last: bool = True
) -> InferenceRuntime:
    """A rewritten copy of ``generator`` for inference (the original is left untouched).

    Args:
        generator: A trained generator (an :class:`~srgan.models.srresnet.SRResNet`, possibly
            inside a :class:`~srgan.models.bicubic_skip.BicubicResidual`, is rewritten; other
            families are only copied).
        dtype: Weight type of the copy (``torch.bfloat16`` halves memory traffic and uses the
            CPU's or GPU's bf16 matrix units).
        channels_last: Store weights NHWC (oneDNN's and cuDNN's fast layout).

    Returns:
        The copy, in eval mode, without gradients, computing the same function from float32
        input to float32 output (:class:`InferenceRuntime`).
    """
    fast = copy.deepcopy(generator).eval().requires_grad_(False)
    net = fast.net if isinstance(fast, BicubicResidual) else fast
    bicubic = None
    if isinstance(fast, BicubicResidual):  # float32, on the device of the weights
        first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        bicubic = PolyphaseBicubic(first.in_channels, fast.scale).to(first.weight.device)
    if isinstance(net, SRResNet):
        _rewrite_srresnet(net)
    net = net.to(dtype=dtype).requires_grad_(False)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if bicubic is not None:
            bicubic = bicubic.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return InferenceRuntime(net, dtype, bicubic)
