"""Workloads as data: GEMM shapes of real layers and sparse matrices, selectable by
name and tag.

Convolutions are lowered by im2col: M = output pixels (batch 1), K = input
channels x kernel height x kernel width, N = output channels. Workloads tagged
``nm`` also run with their B operand (the weights) pruned to N:M structured
sparsity on a GEMM config with ``sparsity="N:M"``.

Sparse workloads (:data:`SPARSE_WORKLOADS`) are SpMV / SpMM problems for the sparse
MAC engine: a generator of :mod:`accelgen.host.sparse_matrices` and its arguments
(seeded, so every run sees the same matrix) and the number of dense columns.
"""

from dataclasses import dataclass, field

__all__ = ["Workload", "SparseWorkload", "WORKLOADS", "SPARSE_WORKLOADS", "select",
           "select_sparse", "by_name", "sparse_by_name", "all_tags"]


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


@dataclass(frozen=True)
class SparseWorkload:
    """``Y = A @ X`` with A sparse (``rows`` x ``cols``) and X dense (``cols`` x ``p``).

    ``family`` names a generator of :mod:`accelgen.host.sparse_matrices`; ``args``
    are its keyword arguments (``seed`` included).
    """

    name: str
    family: str
    args: tuple
    p: int
    tags: tuple
    description: str
    density_hint: float = field(default=0.0, compare=False)

    def matrix(self):
        """A as a ``scipy.sparse.csr_matrix`` of int64 (int8 values, no stored zeros)."""
        from . import sparse_matrices
        return getattr(sparse_matrices, self.family)(**dict(self.args))


def _conv(name, hw, cin, cout, kernel, desc, stride_out=None, nm=False):
    out = stride_out or hw
    tags = ("conv", "resnet50", "layer") + (("nm",) if nm else ())
    return Workload(name, out * out, cin * kernel * kernel, cout, tags,
                    f"ResNet-50 {desc}: {out}x{out} output, {cin}->{cout} channels, "
                    f"{kernel}x{kernel} kernel, im2col")


WORKLOADS = (
    Workload("square64", 64, 64, 64, ("square",), "square GEMM 64^3"),
    Workload("square128", 128, 128, 128, ("square",), "square GEMM 128^3"),
    Workload("square256", 256, 256, 256, ("square", "nm"), "square GEMM 256^3"),
    Workload("square512", 512, 512, 512, ("square", "large"), "square GEMM 512^3"),
    Workload("gemv_m1", 1, 768, 768, ("skinny", "gemv"), "GEMV, M=1: one token through a 768x768 layer"),
    Workload("gemv_n1", 768, 768, 1, ("skinny", "gemv"), "GEMV, N=1: matrix times one vector"),
    _conv("resnet50.conv1", 112, 3, 64, 7, "conv1 (stride 2)"),
    _conv("resnet50.conv2_3x3", 56, 64, 64, 3, "conv2_x 3x3"),
    _conv("resnet50.conv3_3x3", 28, 128, 128, 3, "conv3_x 3x3", nm=True),
    _conv("resnet50.conv4_3x3", 14, 256, 256, 3, "conv4_x 3x3"),
    _conv("resnet50.conv5_3x3", 7, 512, 512, 3, "conv5_x 3x3"),
    _conv("resnet50.conv4_1x1", 14, 256, 1024, 1, "conv4_x 1x1 expand"),
    Workload("bert.qkv", 128, 768, 768, ("transformer", "bert", "layer", "nm"),
             "BERT-base attention projection, 128 tokens: 128x768 . 768x768"),
    Workload("bert.ffn_up", 128, 768, 3072, ("transformer", "bert", "layer", "large"),
             "BERT-base FFN up-projection, 128 tokens: 128x768 . 768x3072"),
    Workload("bert.ffn_down", 128, 3072, 768, ("transformer", "bert", "layer", "large"),
             "BERT-base FFN down-projection, 128 tokens: 128x3072 . 3072x768"),
    Workload("mlp.hidden", 64, 784, 256, ("mlp", "layer", "nm"),
             "MLP hidden layer, batch 64: 64x784 . 784x256 (MNIST-sized)"),
    Workload("mlp.out", 64, 256, 10, ("mlp", "layer", "skinny"),
             "MLP output layer, batch 64: 64x256 . 256x10"),
)


def _uniform(d, n=1024):
    return SparseWorkload(f"sparse.uniform_d{d:g}", "uniform",
                          (("m", n), ("n", n), ("density", d), ("seed", 1)), 1,
                          ("sparse", "density"),
                          f"SpMV, {n}x{n}, uniform random pattern, density {d:g}", d)


#: The density sweep (lane utilization against density) and structured patterns.
SPARSE_WORKLOADS = tuple(_uniform(d) for d in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)) + (
    SparseWorkload("sparse.bert_qkv_90", "uniform",
                   (("m", 768), ("n", 768), ("density", 0.1), ("seed", 2)), 1,
                   ("sparse", "layer", "transformer"),
                   "BERT-base 768x768 projection pruned to 90% unstructured sparsity, "
                   "times one token (SpMV)", 0.1),
    SparseWorkload("sparse.bert_qkv_90_x8", "uniform",
                   (("m", 768), ("n", 768), ("density", 0.1), ("seed", 2)), 8,
                   ("sparse", "layer", "transformer", "spmm"),
                   "the same pruned projection times 8 tokens (SpMM, 8 dense columns in "
                   "one pass of A on a dense_cols=8 engine, else several passes)", 0.1),
    SparseWorkload("sparse.poisson2d_32", "poisson2d", (("k", 32), ("seed", 3)), 1,
                   ("sparse", "structured"),
                   "2-D Poisson 5-point stencil on a 32x32 grid (1024 rows, <= 5 per row)"),
    SparseWorkload("sparse.banded_8", "banded", (("n", 1024), ("half_bandwidth", 8),
                                                 ("seed", 4)), 1,
                   ("sparse", "structured"), "banded 1024x1024, half-bandwidth 8"),
    SparseWorkload("sparse.powerlaw", "barabasi_albert", (("n", 1024), ("m", 4), ("seed", 5)),
                   1, ("sparse", "structured", "graph"),
                   "Barabasi-Albert graph adjacency, 1024 nodes, m=4 (power-law row lengths)"),
)

DEMO = ("square256", "resnet50.conv4_3x3", "bert.qkv", "mlp.hidden", "gemv_m1")


def by_name(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"No workload named {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")


def sparse_by_name(name: str) -> SparseWorkload:
    for w in SPARSE_WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"No sparse workload named {name!r}; known: "
                     f"{', '.join(w.name for w in SPARSE_WORKLOADS)}")


def all_tags() -> list:
    """Every tag of the dense and sparse tables, sorted."""
    return sorted({t for w in WORKLOADS + SPARSE_WORKLOADS for t in w.tags})


def _select(table, lookup, names, tags):
    known = {w.name for w in table}
    out = [lookup(n) for n in names if n in known]
    for w in table:
        if tags and set(tags) & set(w.tags) and w not in out:
            out.append(w)
    return out if (names or tags) else list(table)


def _check_names(names):
    known = {w.name for w in WORKLOADS + SPARSE_WORKLOADS}
    for n in names:
        if n not in known:
            raise ValueError(f"No workload named {n!r}; known: "
                             f"{', '.join(w.name for w in WORKLOADS + SPARSE_WORKLOADS)}")


def select(names=(), tags=()) -> list:
    """Dense workloads by name and/or tag (all of them when both are empty).

    Names of sparse workloads are accepted and skipped (see :func:`select_sparse`).
    """
    _check_names(names)
    return _select(WORKLOADS, by_name, names, tags)


def select_sparse(names=(), tags=()) -> list:
    """Sparse workloads by name and/or tag (all of them when both are empty)."""
    _check_names(names)
    return _select(SPARSE_WORKLOADS, sparse_by_name, names, tags)
