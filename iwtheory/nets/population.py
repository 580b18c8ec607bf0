"""A population: M models of one architecture as one stacked computation, any ``nn.Module`` included.

``population(modules)`` stacks M plain modules built by one factory (the same class, the same parameter
shapes). The package's own models (``BLCNN``, ``MLP``, ``ResNet``) take their hand-written stacked twins
(``models.STACKED``: grouped convolutions and batched matmuls, the fast path); any other module takes the
generic path, ``FuncStack``: its parameters and buffers stacked with ``torch.func.stack_module_state`` and
one copy of the module called on each member's slice with ``functional_call`` under ``vmap``. Tests hold
the two paths to each other and to a plain per-model loop.

A model's numbers never depend on its stack mates:
- batch norm keeps running statistics per member (its buffers are stacked; eval mode reads them);
- ``nn.Dropout`` modules are swapped for ``MemberDropout``, which reads its mask from uniforms drawn per
  member from that member's own generator, so masks are the member's whatever shares its stack. Any other
  random operation inside a model (``F.dropout``, ``torch.rand``) is refused with one clear error: vmap
  would draw it from one shared stream.

The model contract: ``forward(x)`` returns logits, (B,) or (B, 1) for two classes, (B, K) for K classes.
An optional ``features(x)`` with a linear ``head`` (``head(features(x)) == forward(x)``) enables the
feature-space measurements.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from iwtheory.nets.models import STACKED, stack_members


class PopulationError(ValueError):
    """Modules that cannot form one population (other classes or shapes, unsupported randomness)."""


class _NoiseSource:
    """Per-member uniforms for one forward pass, consumed in the order the dropout layers run."""

    def __init__(self, noise: torch.Tensor | None, counting: bool = False):
        self.noise, self.offset, self.counting = noise, 0, counting

    def take(self, shape: torch.Size) -> torch.Tensor | None:
        n = 1
        for s in shape:
            n *= int(s)
        start, self.offset = self.offset, self.offset + n
        if self.counting:
            return None
        return self.noise[start:start + n].reshape(shape)


class MemberDropout(nn.Module):
    """``nn.Dropout`` (or Dropout1d/2d/3d: whole channels) whose mask comes from the member's own uniforms."""

    def __init__(self, p: float, channels: bool):
        super().__init__()
        self.p, self.channels = float(p), channels
        self.source: _NoiseSource | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = x.shape[:2] + (1,) * (x.dim() - 2) if self.channels else x.shape
        u = self.source.take(shape)
        if u is None:  # the counting pass that sizes the uniforms
            return x
        return x * (u >= self.p).to(x.dtype) / (1.0 - self.p)


_DROPOUTS = {nn.Dropout: False, nn.Dropout1d: True, nn.Dropout2d: True, nn.Dropout3d: True}


def _swap_dropout(module: nn.Module) -> list[MemberDropout]:
    """Replace every dropout module of ``module`` (in place) by a ``MemberDropout``; the new ones in call order."""
    swapped = []
    for name, child in list(module.named_children()):
        if type(child) in _DROPOUTS:
            new = MemberDropout(child.p, _DROPOUTS[type(child)])
            setattr(module, name, new)
            swapped.append(new)
        elif isinstance(child, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
            raise PopulationError(f"{type(child).__name__} is not supported in a population; use nn.Dropout")
        else:
            swapped += _swap_dropout(child)
    return swapped


class _Method(nn.Module):
    """Calls a named method of the wrapped module as its forward (so functional_call can reach ``features``)."""

    def __init__(self, inner: nn.Module, method: str):
        super().__init__()
        self.inner, self.method = inner, method

    def forward(self, x):
        return getattr(self.inner, self.method)(x)


class FuncStack(nn.Module):
    """The generic path: M copies of any module, parameters and buffers stacked on a leading axis of size M.

    Parameters and buffers are registered under escaped names (``.`` -> ``__``), so the stack is an ordinary
    module: ``parameters()``, ``state_dict()``, ``.to()``, ``train()``/``eval()`` work as usual."""

    fast = False

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.M = len(modules)
        ref = modules[0]
        self.has_features = callable(getattr(ref, "features", None)) and isinstance(getattr(ref, "head", None),
                                                                                 nn.Linear)
        params, buffers = stack_module_state(modules)
        self._pnames = list(params)
        self._bnames = list(buffers)
        # A linear layer's weight (out, in) is kept in memory as (in, out) and seen transposed, as the fast path's
        # BLinear keeps it: under vmap its matmul then reads it without a copy and its gradient arrives in the
        # parameter's own layout (the copies took half of an MLP stack's step on a CPU). The rule is the layer's
        # type, not a timing, so the same model always gets the same layout (and the same bits).
        linear = {f"{n}.weight" if n else "weight" for n, m in ref.named_modules() if isinstance(m, nn.Linear)}
        for n in self._pnames:
            v = params[n].detach()
            if n in linear:
                v = v.transpose(1, 2).contiguous().transpose(1, 2)
            else:
                v = v.clone()
            self.register_parameter(n.replace(".", "__"), nn.Parameter(v))
        for n in self._bnames:
            self.register_buffer(n.replace(".", "__"), buffers[n].detach().clone())
        base = copy.deepcopy(ref)
        drops = _swap_dropout(base)
        # not a registered child: its own parameters are placeholders that functional_call replaces
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_drops", drops)
        object.__setattr__(self, "_features", _Method(base, "features") if self.has_features else None)
        self._noise_sizes: dict[tuple, int] = {}
        self._vetted = False

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._base._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self._base.train(mode)
        return self

    def _state(self) -> tuple[dict, dict]:
        return ({n: getattr(self, n.replace(".", "__")) for n in self._pnames},
                {n: getattr(self, n.replace(".", "__")) for n in self._bnames})

    def _call(self, module: nn.Module, prefix: str, x: torch.Tensor, shared: bool,
              noise: torch.Tensor | None) -> torch.Tensor:
        params, buffers = self._state()
        if prefix:
            params = {prefix + k: v for k, v in params.items()}
            buffers = {prefix + k: v for k, v in buffers.items()}

        def one(p, b, xx, u):
            src = _NoiseSource(u)
            for d in self._drops:
                d.source = src
            return functional_call(module, (p, b), (xx,))

        if self.M == 1 and self._vetted:  # one member: no vmap, whose per-call cost is most of a small step
            first = lambda t: {k: v.squeeze(0) for k, v in t.items()}  # noqa: E731 (views: gradients, statistics flow back)
            out = one(first(params), first(buffers), x if shared else x.squeeze(0), None if noise is None else noise[0])
            return out.unsqueeze(0)
        dims = (0, 0, None if shared else 0, None if noise is None else 0)
        try:
            out = vmap(one, in_dims=dims, randomness="error")(params, buffers, x, noise)
            if self.training:
                self._vetted = True  # a training pass under randomness="error": no stray random operation
            return out
        except RuntimeError as e:
            if "randomness" in str(e):
                raise PopulationError(
                    f"{type(self._base).__name__} draws random numbers outside nn.Dropout modules (for example "
                    "F.dropout or torch.rand in forward); a population gives each member its own randomness only "
                    "through nn.Dropout modules: use those") from None
            raise

    def noise_size(self, x: torch.Tensor) -> int:
        """Uniforms one member's training forward on a batch shaped like ``x[0]`` consumes (0 without dropout)."""
        if not self._drops:
            return 0
        key = tuple(x.shape[1:])
        if key not in self._noise_sizes:
            src = _NoiseSource(None, counting=True)
            for d in self._drops:
                d.source = src
            params, buffers = self._state()
            with torch.no_grad():  # on copies of member 0's buffers: its batch-norm statistics stay as they are
                functional_call(self._base, ({k: v[0] for k, v in params.items()},
                                             {k: v[0].clone() for k, v in buffers.items()}), (x[0],))
            self._noise_sizes[key] = src.offset
        return self._noise_sizes[key]

    def forward(self, x: torch.Tensor, gens=None, shared: bool = False) -> torch.Tensor:
        """Logits of every member: ``x`` (M, B, ...) a batch per member, or (N, ...) shared (``shared``)."""
        noise = None
        if self.training and self._drops:
            if gens is None:
                raise PopulationError("a population with dropout needs a generator per member to train")
            n = self.noise_size(x if not shared else x.expand(self.M, *x.shape))
            noise = torch.stack([torch.rand(n, generator=g, device=g.device) for g in gens]).to(x.device)
        return self._call(self._base, "", x, shared, noise)

    def features(self, x: torch.Tensor, gens=None, shared: bool = True) -> torch.Tensor:
        """Penultimate features (M, N, F) of shared inputs (eval mode)."""
        if not self.has_features:
            raise PopulationError(f"{type(self._base).__name__} has no features() with a linear head")
        return self._call(self._features, "inner.", x, shared, None)

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, F) weights and (M,) biases of the head's one logit."""
        params, _ = self._state()
        names = [n for n, m in self._base.named_modules() if m is self._base.head]
        w = params[f"{names[0]}.weight"]
        b = params.get(f"{names[0]}.bias")
        return w[:, 0, :], (b[:, 0] if b is not None else torch.zeros_like(w[:, 0, 0]))


def _signature(m: nn.Module) -> list:
    return [(n, tuple(t.shape), t.dtype) for n, t in (*m.named_parameters(), *m.named_buffers())]


def check_members(modules: list[nn.Module]) -> None:
    """Refuse modules that cannot share a stack, naming the first difference."""
    if not modules:
        raise PopulationError("a population needs at least one module")
    for k, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise PopulationError(f"the model factory returned {type(m).__name__} for member {k}, not an nn.Module")
    ref = modules[0]
    sig = _signature(ref)
    if not any(True for _ in ref.parameters()):
        raise PopulationError(f"{type(ref).__name__} has no parameters to train")
    for k, m in enumerate(modules[1:], 1):
        if type(m) is not type(ref):
            raise PopulationError(f"member {k} is a {type(m).__name__}, member 0 a {type(ref).__name__}: a "
                                  "population holds one architecture")
        if _signature(m) != sig:
            raise PopulationError(f"member {k} of {type(ref).__name__} has other parameter names or shapes than "
                                  "member 0: a population holds one architecture")
        if [getattr(d, "p", None) for d in m.modules() if type(d) in _DROPOUTS] != \
                [getattr(d, "p", None) for d in ref.modules() if type(d) in _DROPOUTS]:
            raise PopulationError(f"member {k} has other dropout rates than member 0: train them in separate stacks")


def has_fast_path(module: nn.Module) -> bool:
    """Whether the module is one of the package's models with a hand-written stacked twin."""
    return type(module) in STACKED


def population(modules: list[nn.Module], generic: bool = False) -> nn.Module:
    """One stacked module for ``modules``: the hand-written twin where one exists (unless ``generic``), else a
    ``FuncStack``. Both expose ``M``, ``fast`` and ``has_features``; the fast path reads its inputs in its own
    layout (``Stack._layout``), the generic one (M, B, ...) per-member batches or (N, ...) shared inputs."""
    if has_fast_path(modules[0]) and not generic:
        if any(type(m) is not type(modules[0]) for m in modules):
            raise PopulationError("a population holds one architecture")
        net = stack_members(modules)
        net.fast, net.has_features = True, True
        return net
    check_members(modules)
    return FuncStack(modules)


def check_logits(per: tuple, n_classes: int, rows: int, what: str) -> None:
    """Refuse one model's output of shape ``per`` for a batch of ``rows`` unless it is logits of the task: (B,) or
    (B, 1) for two classes, (B, K) for K."""
    per = tuple(per)
    want = ((rows,), (rows, 1)) if n_classes == 2 else ((rows, n_classes),)
    if per not in want:
        raise PopulationError(f"{what} gives logits of shape {per} for a batch of {rows}; a {n_classes}-class task "
                              f"needs {'(B,) or (B, 1)' if n_classes == 2 else f'(B, {n_classes})'}")


def signature_text(module: nn.Module) -> list[str]:
    """The parameter names and shapes of a module, as text for a run's identity."""
    return [f"{n}:{'x'.join(str(s) for s in t.shape)}" for n, t in module.named_parameters()]
