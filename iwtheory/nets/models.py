"""Models, each as a plain nn.Module and as a stack of M independent copies.

Plain modules (``BLCNN``, ``MLP``, ``ResNet``) are ordinary PyTorch. ``Stacked*`` mirror their
parameter names exactly, holding M models in one set of tensors: convolutions are grouped
(input channels laid out (B, M*C, H, W)), linear layers are batched matmuls over (M, B, F),
batch norm is per channel (so per model). ``stack_members`` copies plain models in and
``unstack_member`` copies one back out; dropout masks come from one generator per model, so
a model's numbers do not depend on which other models share its stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iwtheory.nets.names import MAX_CNN_WIDTH, MLP_HIDDEN
from iwtheory.theory import seeds


def _dropout(x: torch.Tensor, p: float, training: bool, gen: torch.Generator | None) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    u = torch.rand(x.shape, generator=gen, device=gen.device if gen is not None else x.device)
    return x * (u.to(x.device) >= p).to(x.dtype) / (1.0 - p)  # u is fp32 in every precision


def _bl_trunk(x, convs, bns):
    """The B&L CNN's convolutions (plain or grouped): conv, [batch norm], ReLU; max-pool after the 2nd and 5th."""
    for i, conv in enumerate(convs):
        x = conv(x)
        if bns is not None:
            x = bns[i](x)
        x = F.relu(x)
        if i in (1, 4):
            x = F.max_pool2d(x, 2)
    return x


# ---- plain models -----------------------------------------------------------------------

BLCNN_CONVS, BLCNN_FCS = (64, 64, 128, 128, 128), (512, 128)


def blcnn_widths(width: float = 1.0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The B&L CNN's convolution channels and hidden fully connected widths at width factor ``width``."""
    if not (isinstance(width, (int, float)) and 0 < width <= MAX_CNN_WIDTH):
        raise ValueError(f"the B&L CNN's width factor must lie in (0, {MAX_CNN_WIDTH}]; got {width!r}")
    return tuple(max(1, round(k * width)) for k in BLCNN_CONVS), tuple(max(1, round(k * width)) for k in BLCNN_FCS)


class BLCNN(nn.Module):
    """Byrd & Lipton's CNN: 3x3 valid convs 64, 64, pool, 128, 128, 128, pool; FC 512, 128, 1.

    ``batchnorm`` adds batch norm after each convolution; ``dropout`` acts after each hidden
    fully connected layer. Adapts to the input's channels and size. ``width`` scales every convolution's
    channels and both hidden fully connected layers together (rounded, at least 1): 1 is the paper's net,
    0.25 a net two CPU cores can train (``blcnn_widths``).
    """

    def __init__(self, in_shape=(3, 32, 32), dropout: float = 0.0, batchnorm: bool = False, width: float = 1.0):
        super().__init__()
        c, h, w = in_shape
        convs, fcs = blcnn_widths(width)
        chans = [c, *convs]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, bias=not batchnorm) for i in range(5))
        self.bns = nn.ModuleList(nn.BatchNorm2d(chans[i + 1]) for i in range(5)) if batchnorm else None
        for i in range(5):
            h, w = h - 2, w - 2
            if i in (1, 4):
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {in_shape} is too small for the B&L CNN (needs at least 22x22)")
        self.fc1 = nn.Linear(chans[-1] * h * w, fcs[0])
        self.fc2 = nn.Linear(fcs[0], fcs[1])
        self.out = nn.Linear(fcs[1], 1)
        self.dropout = float(dropout)

    def features(self, x, gen=None):
        x = torch.flatten(_bl_trunk(x, self.convs, self.bns), 1)
        x = _dropout(F.relu(self.fc1(x)), self.dropout, self.training, gen)
        return _dropout(F.relu(self.fc2(x)), self.dropout, self.training, gen)

    def forward(self, x, gen=None):
        return self.out(self.features(x, gen))[:, 0]


def cosine_logit(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One logit of a two-class cosine classifier (Cao et al. 2019): cos(w_pos, h) - cos(w_neg, h), with
    features ``h`` (..., F) and class vectors ``w`` (..., 2, F), row 0 the positive class."""
    cos = torch.matmul(F.normalize(h, dim=-1), F.normalize(w, dim=-1).transpose(-1, -2))
    return cos[..., 0] - cos[..., 1]


HEADS = ("linear", "cosine")


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs: linear, [batch norm], ReLU, [dropout] per hidden
    layer. ``hidden = ()`` is a linear model. ``head = "cosine"``: the last layer is a cosine classifier
    (two class vectors, no bias, features and vectors normalised), the logit bounded by 2. ``bias = False``
    (no batch norm): positively homogeneous, f(c theta) = c^L f(theta) with L = len(hidden) + 1 layers."""

    def __init__(self, in_shape=(3, 32, 32), hidden=MLP_HIDDEN, dropout: float = 0.0, batchnorm: bool = False,
                 head: str = "linear", bias: bool = True):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}; got {head!r}")
        if not bias and batchnorm:
            raise ValueError("a net without biases is positively homogeneous only without batch norm")
        self.in_shape = tuple(in_shape)
        dims = [int(torch.tensor(in_shape).prod())] + [int(h) for h in hidden]
        self.hidden = nn.ModuleList(nn.Linear(dims[i], dims[i + 1], bias=bias) for i in range(len(hidden)))
        self.bns = nn.ModuleList(nn.BatchNorm1d(h) for h in dims[1:]) if batchnorm else None
        self.head = head
        self.out = nn.Linear(dims[-1], 1, bias=bias) if head == "linear" else nn.Linear(dims[-1], 2, bias=False)
        self.dropout = float(dropout)

    @property
    def degree(self) -> int | None:
        """L when the net is positively homogeneous (no biases, no batch norm, a linear head): f(c theta) =
        c^L f(theta); else None. The engine records the normalised margin of a net that declares a degree."""
        if self.bns is not None or self.head != "linear" or any(m.bias is not None for m in (*self.hidden, self.out)):
            return None
        return len(self.hidden) + 1

    def features(self, x, gen=None):
        x = torch.flatten(x, 1)
        for i, lin in enumerate(self.hidden):
            x = lin(x)
            if self.bns is not None:
                x = self.bns[i](x)
            x = _dropout(F.relu(x), self.dropout, self.training, gen)
        return x

    def forward(self, x, gen=None):
        if self.head == "cosine":
            return cosine_logit(self.features(x, gen), self.out.weight)
        return self.out(self.features(x, gen))[:, 0]


class _Block(nn.Module):
    def __init__(self, cin, cout, stride, batchnorm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(cout) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(cout) if batchnorm else nn.Identity()
        self.short = nn.Conv2d(cin, cout, 1, stride, bias=not batchnorm) if (stride != 1 or cin != cout) else None
        self.short_bn = nn.BatchNorm2d(cout) if (self.short is not None and batchnorm) else nn.Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.short is None else self.short_bn(self.short(x))
        return F.relu(y + s)


class ResNet(nn.Module):
    """A small ResNet: 3x3 stem (16), one basic block per stage (16, 32, 64), global pool, linear."""

    def __init__(self, in_shape=(3, 32, 32), dropout: float = 0.0, batchnorm: bool = True, width: int = 16):
        super().__init__()
        if dropout:
            raise ValueError("the ResNet has no dropout variant")
        c = in_shape[0]
        self.stem = nn.Conv2d(c, width, 3, 1, 1, bias=not batchnorm)
        self.stem_bn = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        self.blocks = nn.ModuleList([_Block(width, width, 1, batchnorm), _Block(width, 2 * width, 2, batchnorm),
                                     _Block(2 * width, 4 * width, 2, batchnorm)])
        self.out = nn.Linear(4 * width, 1)

    def features(self, x, gen=None):
        x = F.relu(self.stem_bn(self.stem(x)))
        for b in self.blocks:
            x = b(x)
        return x.mean(dim=(2, 3))

    def forward(self, x, gen=None):
        return self.out(self.features(x))[:, 0]


PLAIN = {"bl_cnn": BLCNN, "mlp": MLP, "resnet": ResNet}


def make_plain(name: str, in_shape, dropout: float = 0.0, batchnorm: bool = False, seed: int | None = None,
               hidden=None, head: str = "linear", bias: bool = True, width: float = 1.0):
    """A plain model by name; ``seed`` fixes its initialisation (torch's default init); ``hidden`` sets
    the MLP's widths, ``head`` its last layer (linear, or the cosine classifier LDAM trains), ``width`` the
    B&L CNN's width factor."""
    if name not in PLAIN:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(PLAIN)}")
    kw = dict(dropout=dropout, batchnorm=batchnorm)
    if width != 1.0:
        if name != "bl_cnn":
            raise ValueError(f"a width factor is a setting of the B&L CNN; the {name} has its own widths")
        kw["width"] = width
    if head != "linear":
        if name != "mlp":
            raise ValueError(f"a {head} head is an MLP setting; the {name} has a linear one")
        kw["head"] = head
    if not bias:
        if name != "mlp":
            raise ValueError(f"a net without biases is an MLP setting; the {name} has biases")
        kw["bias"] = False
    if hidden is not None:
        if name != "mlp":
            raise ValueError(f"hidden widths are an MLP setting; the {name} has a fixed architecture")
        kw["hidden"] = tuple(hidden)
    if seed is None:
        return PLAIN[name](in_shape, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds.int_seed(seed, "init"))
        return PLAIN[name](in_shape, **kw)


# ---- stacked layers -----------------------------------------------------------------------

class BConv2d(nn.Module):
    """M convolutions as one grouped convolution; weight (M*cout, cin, k, k)."""

    def __init__(self, M, conv: nn.Conv2d):
        super().__init__()
        self.M, self.cin, self.stride, self.padding = M, conv.in_channels, conv.stride, conv.padding
        self.weight = nn.Parameter(torch.empty(M * conv.out_channels, *conv.weight.shape[1:]))
        self.bias = nn.Parameter(torch.empty(M * conv.out_channels)) if conv.bias is not None else None

    def forward(self, x):
        # a shared input (cin channels) needs no replication: an ungrouped conv gives every model's output
        groups = 1 if x.shape[1] == self.cin else self.M
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, groups=groups)


class _MomentumGrad(torch.autograd.Function):
    """A batched linear layer whose backward adds the weight's gradient straight into its SGD momentum buffer
    (buf <- momentum buf + gradient, in the matmul itself: ``baddbmm_``) and hands autograd none for the weight.

    Why: on a CPU the step is bound by memory traffic as much as by arithmetic; a separate gradient tensor (12
    MB for the first layer of the study's stack) is written by one pass and read back by the next. Here it is
    never made. The input and bias gradients are autograd's own (derivatives.yaml for ``baddbmm``:
    grad.bmm(batch2^T), grad summed to the bias). The momentum sum is rounded once inside the matmul instead
    of once after it, so it agrees with the unfused update to float rounding, not bit for bit."""

    @staticmethod
    def forward(ctx, x, weight, bias, buf, momentum, after):
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.buf, ctx.momentum, ctx.after = bias is not None, buf, momentum, after
        wt = weight.transpose(1, 2)
        return torch.bmm(x, wt) if bias is None else torch.baddbmm(bias[:, None, :], x, wt)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        gx = torch.bmm(g, weight) if ctx.needs_input_grad[0] else None
        ctx.buf.transpose(1, 2).baddbmm_(x.transpose(1, 2), g, beta=ctx.momentum)
        if ctx.after is not None:
            ctx.after()
        gb = g.sum(1, keepdim=True).squeeze(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, None, gb, None, None, None


class BLinear(nn.Module):
    """M linear layers as a batched matmul; weight (M, out, in) like nn.Linear's, input (M, B, in).

    The weight is stored in memory as (M, in, out) and viewed as (M, out, in): the matmul then reads
    it contiguously, and its gradient arrives in the parameter's own layout (a gradient of another
    layout is copied by autograd on every step, which cost the CPU engine 40% of its time).

    ``fuse_momentum(buf, momentum, after)``: while ``armed`` (the engine's training step, and nothing else:
    a user's own backward pass through the stack stays plain autograd), a backward pass adds the weight's
    gradient into ``buf`` (``_MomentumGrad``), calls ``after()`` (the engine's update of this weight, while
    ``buf`` is still in cache) and leaves ``weight.grad`` unset."""

    def __init__(self, M, lin: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(M, lin.in_features, lin.out_features).transpose(1, 2))
        self.bias = nn.Parameter(torch.empty(M, lin.out_features)) if lin.bias is not None else None
        self.momentum_buf: torch.Tensor | None = None
        self.momentum, self.after, self.armed = 0.0, None, False

    def fuse_momentum(self, buf: torch.Tensor, momentum: float, after=None) -> None:
        """Armed backward passes add the weight's gradient into ``buf`` (the weight's shape and strides), after
        multiplying what ``buf`` held by ``momentum``, then call ``after()``."""
        if buf.shape != self.weight.shape or buf.stride() != self.weight.stride() or buf.dtype != self.weight.dtype:
            raise ValueError("the momentum buffer must have the weight's shape, memory layout and dtype")
        self.momentum_buf, self.momentum, self.after = buf, float(momentum), after

    def forward(self, x):
        w = self.weight
        if (self.armed and self.momentum_buf is not None and w.dtype == x.dtype and torch.is_grad_enabled()
                and w.requires_grad and not torch.is_autocast_enabled(x.device.type)):
            return _MomentumGrad.apply(x, w, self.bias, self.momentum_buf, self.momentum, self.after)
        if self.bias is None:
            return torch.bmm(x, w.transpose(1, 2).to(x.dtype))
        return torch.baddbmm(self.bias[:, None, :].to(x.dtype), x, w.transpose(1, 2).to(x.dtype))


class BBatchNorm1d(nn.BatchNorm1d):
    """M batch norms over (M, B, F) inputs: one BatchNorm1d of M*F channels, so statistics stay per model."""

    def forward(self, x):
        M, B, Fd = x.shape
        return super().forward(x.transpose(0, 1).reshape(B, M * Fd)).reshape(B, M, Fd).transpose(0, 1)


def _stack_layer(M, mod):
    if isinstance(mod, nn.Conv2d):
        return BConv2d(M, mod)
    if isinstance(mod, nn.Linear):
        return BLinear(M, mod)
    if isinstance(mod, nn.BatchNorm2d):
        return nn.BatchNorm2d(M * mod.num_features, eps=mod.eps, momentum=mod.momentum)
    if isinstance(mod, nn.BatchNorm1d):
        return BBatchNorm1d(M * mod.num_features, eps=mod.eps, momentum=mod.momentum)
    if isinstance(mod, nn.Identity):
        return nn.Identity()
    if mod is None:
        return None
    if isinstance(mod, nn.ModuleList):
        return nn.ModuleList(_stack_layer(M, m) for m in mod)
    raise TypeError(f"cannot stack {type(mod).__name__}")


def to_models(x: torch.Tensor, M: int) -> torch.Tensor:
    """(B, M*C, H, W) -> (M, B, C*H*W)."""
    B = x.shape[0]
    return x.reshape(B, M, -1).transpose(0, 1)


def _dropout_stacked(x, p: torch.Tensor, training: bool, gens) -> torch.Tensor:
    """Per-model dropout on (M, B, F); model m's mask comes from gens[m] as a plain model's would.

    ``gens`` is None when no model of the stack has dropout (the engine's convention); a member
    with p = 0 keeps every unit. No tensor is turned into a Python bool here: that would force a
    device sync (and a torch.compile graph break) on every step."""
    if not training or gens is None:
        return x
    u = torch.stack([torch.rand(x.shape[1:], generator=g, device=g.device) for g in gens]).to(x.device)
    keep = (u >= p[:, None, None]).to(x.dtype)
    return x * keep / (1.0 - p[:, None, None]).to(x.dtype)


class StackedBLCNN(nn.Module):
    def __init__(self, M, ref: BLCNN, dropouts):
        super().__init__()
        self.M = M
        self.convs = _stack_layer(M, ref.convs)
        self.bns = _stack_layer(M, ref.bns)
        self.fc1, self.fc2, self.out = (BLinear(M, m) for m in (ref.fc1, ref.fc2, ref.out))
        self.register_buffer("p", torch.as_tensor(dropouts, dtype=torch.float32))

    def features(self, x, gens=None):
        x = to_models(_bl_trunk(x, self.convs, self.bns), self.M)
        x = _dropout_stacked(F.relu(self.fc1(x)), self.p, self.training, gens)
        return _dropout_stacked(F.relu(self.fc2(x)), self.p, self.training, gens)

    def forward(self, x, gens=None):
        return self.out(self.features(x, gens))[..., 0]


class StackedMLP(nn.Module):
    def __init__(self, M, ref: MLP, dropouts):
        super().__init__()
        self.M, self.cin = M, ref.in_shape[0]
        self.hidden = _stack_layer(M, ref.hidden)
        self.bns = _stack_layer(M, ref.bns)
        self.head = ref.head
        if ref.head == "cosine":  # (M, 2, F) class vectors, plain stacked weights (no bias to batch)
            self.out = nn.Module()
            self.out.weight = nn.Parameter(torch.empty(M, *ref.out.weight.shape))
        else:
            self.out = BLinear(M, ref.out)
        self.register_buffer("p", torch.as_tensor(dropouts, dtype=torch.float32))

    def features(self, x, gens=None):
        if x.dim() == 3:            # (M, B, F): a batch per model, already in the models' layout
            pass
        elif x.shape[1] == self.cin:  # one batch shared by every model
            x = torch.flatten(x, 1).expand(self.M, x.shape[0], -1)
        else:                       # (B, M*C, H, W): a batch per model
            x = to_models(x, self.M)
        for i, lin in enumerate(self.hidden):
            x = lin(x)
            if self.bns is not None:
                x = self.bns[i](x)
            x = _dropout_stacked(F.relu(x), self.p, self.training, gens)
        return x

    def forward(self, x, gens=None):
        if self.head == "cosine":
            return cosine_logit(self.features(x, gens), self.out.weight.to(x.dtype))
        return self.out(self.features(x, gens))[..., 0]


class _SBlock(nn.Module):
    def __init__(self, M, ref: _Block):
        super().__init__()
        for name in ("conv1", "bn1", "conv2", "bn2", "short", "short_bn"):
            setattr(self, name, _stack_layer(M, getattr(ref, name)))

    forward = _Block.forward


class StackedResNet(nn.Module):
    def __init__(self, M, ref: ResNet, dropouts):
        super().__init__()
        self.M = M
        self.stem, self.stem_bn = BConv2d(M, ref.stem), _stack_layer(M, ref.stem_bn)
        self.blocks = nn.ModuleList(_SBlock(M, b) for b in ref.blocks)
        self.out = BLinear(M, ref.out)

    def features(self, x, gens=None):
        x = F.relu(self.stem_bn(self.stem(x)))
        for b in self.blocks:
            x = b(x)
        return to_models(x.mean(dim=(2, 3)), self.M)

    def forward(self, x, gens=None):
        return self.out(self.features(x))[..., 0]


STACKED = {BLCNN: StackedBLCNN, MLP: StackedMLP, ResNet: StackedResNet}


def last_layer(stacked: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, F) weights and (M,) biases of the one logit of a stacked net; for the cosine head, u_pos - u_neg (the
    logit is its product with the normalised features) and zero biases."""
    if getattr(stacked, "head", "linear") == "cosine":
        u = F.normalize(stacked.out.weight, dim=-1)
        return u[:, 0] - u[:, 1], torch.zeros(u.shape[0], dtype=u.dtype, device=u.device)
    w = stacked.out.weight[:, 0, :]
    return w, stacked.out.bias[:, 0] if stacked.out.bias is not None else torch.zeros_like(w[:, 0])


def stack_members(members: list[nn.Module]) -> nn.Module:
    """One stacked module holding copies of ``members`` (same architecture; dropout rates may differ)."""
    M = len(members)
    ref = members[0]
    dropouts = [float(getattr(m, "dropout", 0.0)) for m in members]
    stacked = STACKED[type(ref)](M, ref, dropouts)
    sd = stacked.state_dict()
    for name, t in sd.items():
        if name == "p":
            continue
        parts = [m.state_dict()[name] for m in members]
        if name.endswith("num_batches_tracked"):
            t.copy_(parts[0])
        elif t.dim() == parts[0].dim() + 1:
            t.copy_(torch.stack(parts))
        else:
            t.copy_(torch.cat(parts))
    return stacked


def unstack_member(stacked: nn.Module, m: int, member: nn.Module) -> nn.Module:
    """Copy model ``m`` of ``stacked`` into the plain module ``member`` (same architecture) and return it."""
    M = stacked.M
    sd = member.state_dict()
    ssd = stacked.state_dict()
    for name, t in sd.items():
        s = ssd[name]
        if name.endswith("num_batches_tracked"):
            t.copy_(s)
        elif s.dim() == t.dim() + 1:
            t.copy_(s[m])
        else:
            t.copy_(s.reshape(M, -1)[m].reshape(t.shape))
    return member

