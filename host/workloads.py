"""Workloads as data: GEMM shapes of real layers, selectable by name and tag.

Convolutions are lowered by im2col: M = output pixels (batch 1), K = input
channels x kernel height x kernel width, N = output channels.
"""

from dataclasses import dataclass

__all__ = ["Workload", "WORKLOADS", "select", "by_name"]


@dataclass(frozen=True)
class Workload:
    name: str
    m: int
    k: int
    n: int
    tags: tuple
    description: str

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n


def _conv(name, hw, cin, cout, kernel, desc, stride_out=None):
    out = stride_out or hw
    return Workload(name, out * out, cin * kernel * kernel, cout, ("conv", "resnet50", "layer"),
                    f"ResNet-50 {desc}: {out}x{out} output, {cin}->{cout} channels, "
                    f"{kernel}x{kernel} kernel, im2col")


WORKLOADS = (
    Workload("square64", 64, 64, 64, ("square",), "square GEMM 64^3"),
    Workload("square128", 128, 128, 128, ("square",), "square GEMM 128^3"),
    Workload("square256", 256, 256, 256, ("square",), "square GEMM 256^3"),
    Workload("square512", 512, 512, 512, ("square", "large"), "square GEMM 512^3"),
    Workload("gemv_m1", 1, 768, 768, ("skinny", "gemv"), "GEMV, M=1: one token through a 768x768 layer"),
    Workload("gemv_n1", 768, 768, 1, ("skinny", "gemv"), "GEMV, N=1: matrix times one vector"),
    _conv("resnet50.conv1", 112, 3, 64, 7, "conv1 (stride 2)"),
    _conv("resnet50.conv2_3x3", 56, 64, 64, 3, "conv2_x 3x3"),
    _conv("resnet50.conv3_3x3", 28, 128, 128, 3, "conv3_x 3x3"),
    _conv("resnet50.conv4_3x3", 14, 256, 256, 3, "conv4_x 3x3"),
    _conv("resnet50.conv5_3x3", 7, 512, 512, 3, "conv5_x 3x3"),
    _conv("resnet50.conv4_1x1", 14, 256, 1024, 1, "conv4_x 1x1 expand"),
    Workload("bert.qkv", 128, 768, 768, ("transformer", "bert", "layer"),
             "BERT-base attention projection, 128 tokens: 128x768 . 768x768"),
    Workload("bert.ffn_up", 128, 768, 3072, ("transformer", "bert", "layer", "large"),
             "BERT-base FFN up-projection, 128 tokens: 128x768 . 768x3072"),
    Workload("bert.ffn_down", 128, 3072, 768, ("transformer", "bert", "layer", "large"),
             "BERT-base FFN down-projection, 128 tokens: 128x3072 . 3072x768"),
    Workload("mlp.hidden", 64, 784, 256, ("mlp", "layer"),
             "MLP hidden layer, batch 64: 64x784 . 784x256 (MNIST-sized)"),
    Workload("mlp.out", 64, 256, 10, ("mlp", "layer", "skinny"),
             "MLP output layer, batch 64: 64x256 . 256x10"),
)

DEMO = ("square256", "resnet50.conv4_3x3", "bert.qkv", "mlp.hidden", "gemv_m1")


def by_name(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"No workload named {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")


def select(names=(), tags=()) -> list:
    """Workloads by name and/or tag (all of them when both are empty)."""
    out = [by_name(n) for n in names]
    for w in WORKLOADS:
        if tags and set(tags) & set(w.tags) and w not in out:
            out.append(w)
    return out if (names or tags) else list(WORKLOADS)
