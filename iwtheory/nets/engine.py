"""Train M models of one architecture at once on one device, with per-epoch records.

Seeds (per model, every stream named in ``theory.seeds``): ``seed`` sets the initialisation (its "init"
stream, given to torch.manual_seed before the plain model is built), the batch order (a CPU generator,
"batch_order") and the dropout masks (a generator on the device, "dropout"). The task's subsampling,
probe sets and feature subset follow the experiment's ``subsample_seed``. A model's numbers therefore do
not depend on which other models share its stack. TF32 (a process-wide torch setting) is switched on
only inside a stack's own computations (``tf32``).

Each epoch takes floor(N / batch_size) steps over a fresh permutation (static shapes; the
left-over examples differ from epoch to epoch). SGD follows torch.optim.SGD (momentum, no
dampening, weight decay added to the gradient) with a learning rate and weight decay per model.
"""

from __future__ import annotations

import contextlib
import functools
import io
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from iwtheory.nets.data import Task
from iwtheory.nets.risks import cross_entropy, margin_loss, weighted_risk
from iwtheory.nets.models import MLP, BLinear, last_layer, make_plain
from iwtheory.nets.population import check_logits, population
from iwtheory.nets.names import PARTNER_FIELDS, PRECISIONS
from iwtheory.theory import seeds
from iwtheory.theory.checks import class_weights
from iwtheory.theory.limits import COSINE

@contextlib.contextmanager
def tf32(on: bool):
    """TF32 matmuls and convolutions on (a GPU setting torch keeps for the whole process) for the computation
    inside, and the process's settings back after, so one stack's precision never leaks into another's."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _flushing() -> bool:
    """Whether this process flushes subnormal floats to zero now (torch has a setter and no getter)."""
    return float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0


@functools.cache
def _each_thread():
    """A function running a Python callable once on every thread of torch's OpenMP pool (through torch's own
    libgomp), or None where that library is not there (another build). FTZ/DAZ is a register of each thread, set
    at its creation from its creator's: torch.set_flush_denormal alone reaches the calling thread only."""
    import ctypes
    import os

    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if not os.path.isfile(path):
        return None
    try:
        lib = ctypes.CDLL(path)
        run = lib.GOMP_parallel
    except (OSError, AttributeError):
        return None
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    run.argtypes, run.restype = [callback, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint], None

    def each(fn) -> None:
        cb = callback(lambda _data: fn())
        run(cb, None, torch.get_num_threads(), 0)
    return each


def set_flush_denormal(on: bool) -> bool:
    """Flush subnormals to zero (or not) on every CPU thread torch computes on; False (and nothing changed) where
    the pool cannot be reached with more than one thread: threads that disagreed would make results depend on
    how work is split."""
    each = _each_thread() if torch.get_num_threads() > 1 else (lambda fn: fn())
    if each is None:
        return False
    each(lambda: torch.set_flush_denormal(on))
    return True


@contextlib.contextmanager
def flushed(on: bool):
    """Subnormal floats flushed to zero (FTZ/DAZ, a CPU setting of the whole thread) for the computation inside,
    and the process's setting back after. Measured on the study's MLPs on a CPU: from about epoch 40, 12% of the
    momentum entries were subnormal and every epoch ran 4x slower (62 -> 270 ms); flushed, the epochs stay at
    58 ms. A subnormal float32 is below 1.2e-38: a loss term of that size moves no parameter that matters."""
    if not on:
        yield
        return
    was = _flushing()
    if was or not set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        set_flush_denormal(was)


def _in_precision(method):
    """A Stack method run under its precision's global torch settings (``tf32``, ``flushed``)."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with tf32(self.s.precision == "tf32"), flushed(self.s.flush_denormal and self.device.type == "cpu"):
            return method(self, *args, **kwargs)
    return wrapped


def _weak_call(method: weakref.WeakMethod, *args) -> None:
    """Call a weakly held bound method (a no-op once its object is gone)."""
    fn = method()
    if fn is not None:
        fn(*args)


def build_member(factory, seed: int) -> torch.nn.Module:
    """``factory(seed)``, with torch's global generator set from the seed's "init" stream first and restored
    after: a factory that draws its initialisation from torch's default generator is then seeded too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds.int_seed(seed, "init"))
        return factory(seed)


@dataclass
class Member:
    """One model of a stack: its weights and hyperparameters. Class weights (``weight`` on positives, ``wneg``
    on negatives) unless ``example_weights`` gives a weight per training example (and ``val_weights`` per
    validation example); ``unweighted`` marks the member every weighted one of its seed is compared with
    (default: equal class weights)."""

    weight: float
    seed: int
    lr: float
    weight_decay: float = 0.0
    dropout: float = 0.0
    wneg: float = 1.0
    example_weights: object = None
    val_weights: object = None
    unweighted: bool | None = None

    def is_unweighted(self) -> bool:
        return self.weight == self.wneg if self.unweighted is None else bool(self.unweighted)


EVAL_BYTES = 8 * 2**20  # the largest activation of one evaluation pass on a CPU: about a core's share of cache


@dataclass
class EngineSettings:
    """What every model of a stack shares."""

    model: str = "bl_cnn"
    batchnorm: bool = False
    hidden: tuple | None = None    # MLP widths (None: the MLP's default)
    width: float = 1.0             # the B&L CNN's width factor (models.blcnn_widths)
    bias: bool = True              # False: an MLP without biases (positively homogeneous)
    loss: str = "logistic"
    poly_alpha: float = 1.0
    loss_params: dict | None = None  # binary parameters of the class-dependent losses (iwtheory.theory.limits)
    momentum: float = 0.9
    batch_size: int = 16
    n_feature_images: int = 256
    feature_seed: int = 0
    precision: str = "fp32"        # fp32 | tf32 | bf16 (GPU speed) | fp64 (CPU reference)
    channels_last: bool = False
    compile: bool = False
    flush_denormal: bool = True    # subnormal floats flushed to zero on a CPU (``flushed``): 4x faster late epochs
    eval_chunk: int = 0            # images per evaluation pass; 0: sized by activation memory (eval_chunk())


class Stack:
    """M models trained together: ``train_epoch`` trains all of them, ``evaluate`` and ``features``
    measure them, ``save``/``load`` checkpoint them. The schedule belongs to the caller.

    ``factory`` (seed -> nn.Module) builds a user's model instead of the built-in ``s.model``; either way the
    models are stacked by ``population`` (the hand-written fast path where one exists)."""

    def __init__(self, members: list[Member], task: Task, s: EngineSettings, device: str | torch.device = "cpu",
                 factory=None):
        if not members:
            raise ValueError("a stack needs at least one member")
        for m in members:
            if not all(isinstance(v, (int, float)) and v > 0 and np.isfinite(v) for v in (m.weight, m.wneg)):
                raise ValueError(f"class weights must be positive and finite; got {m.weight} and {m.wneg}")
            for name, w, n in (("example_weights", m.example_weights, len(task.y_train)),
                               ("val_weights", m.val_weights, len(task.y_val))):
                if w is not None:
                    w = np.asarray(w, dtype=float)
                    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
                        raise ValueError(f"{name} must be {n} finite non-negative numbers")
            if not (m.lr > 0) or m.weight_decay < 0 or not 0 <= m.dropout < 1:
                raise ValueError(f"bad hyperparameters {m}: need lr > 0, weight_decay >= 0, 0 <= dropout < 1")
        if s.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {s.precision!r}")
        if s.batch_size > len(task.y_train):
            raise ValueError(f"batch_size {s.batch_size} exceeds the {len(task.y_train)} training images")
        self.members, self.s, self.M = members, s, len(members)
        self.device = torch.device(device)
        self.task = task.to(self.device)
        if not task.binary and s.loss != "logistic":
            raise ValueError(f"a {task.n_classes}-class task trains with cross-entropy (loss = 'logistic'); "
                             f"the {s.loss} loss is binary here")
        if factory is None:
            if not task.binary:
                raise ValueError(f"the built-in {s.model} has one logit (two classes); a {task.n_classes}-class "
                                 "task needs a model factory whose forward gives (B, K) logits")
            # LDAM is a loss on a cosine classifier: the loss's name picks the head (Cao et al. 2019)
            head = "cosine" if s.loss in COSINE else "linear"
            plain = [make_plain(s.model, task.shape, dropout=m.dropout, batchnorm=s.batchnorm, seed=m.seed,
                                hidden=s.hidden, head=head, bias=s.bias, width=s.width) for m in members]
        else:
            plain = [build_member(factory, m.seed) for m in members]
        self.net = population(plain).to(self.device)
        self.fast = self.net.fast
        # fp64 is a CPU reference mode: it makes float accumulation order irrelevant in tests
        self.dtype = torch.float64 if s.precision == "fp64" else torch.float32
        self.net = self.net.to(self.dtype)
        if s.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.params = [p for p in self.net.parameters()]
        # the unweighted model with the same seed and hyperparameters, when this stack holds one (its
        # parameter direction is what the weighted ones are compared with); -1 where none
        keys = [tuple(getattr(m, f) for f in PARTNER_FIELDS) for m in members]
        unweighted = {key: k for k, (key, m) in enumerate(zip(keys, members)) if m.is_unweighted()}
        self.partner = [unweighted.get(key, -1) for key in keys]
        # f(c theta) = c^L f(theta) holds for an MLP without biases or batch norm: L linear layers
        self.degree = getattr(plain[0], "degree", None)
        self.forward = self.net
        self.bufs = [torch.zeros_like(p) for p in self.params]
        lr = torch.tensor([m.lr for m in members], device=self.device, dtype=self.dtype)
        wd = torch.tensor([m.weight_decay for m in members], device=self.device, dtype=self.dtype)
        # Shared scalars where the members agree: the update then makes no per-model broadcast.
        self.lr_scalar = members[0].lr if len({m.lr for m in members}) == 1 else None
        self.wd_scalar = members[0].weight_decay if len({m.weight_decay for m in members}) == 1 else None
        self.lr_p = [self.per_param(lr, p) for p in self.params]
        self.lr_factor = 1.0  # the schedule's multiple of every member's learning rate (set by the caller)
        self.wd_p = [self.per_param(wd, p) for p in self.params]
        # (M, N) weights of every training and validation example, per member
        self.c_train = self._weights(members, self.task.y_train, "example_weights")
        self.c_val = self._weights(members, self.task.y_val, "val_weights")
        # an MLP reads (M, B, F) directly, with no image layout; the generic path reads (M, B, ...) as given
        self.flat_input = self.fast and isinstance(plain[0], MLP)
        # An MLP's weight gradients go straight into their momentum buffers and each weight is updated as soon
        # as its gradient is known (BLinear.fuse_momentum): the step never writes a weight gradient tensor (on a
        # CPU, "fused vs plain update" in experiments/benchmarks/roofline.py). Not under autocast or compile (their
        # own graphs), nor for the CNN's linear layers (a small share of its step; its records stay as trained).
        self.fused = [False] * len(self.params)
        self.fused_layers: list[BLinear] = []
        if self.flat_input and not s.compile and s.precision != "bf16":
            index = {id(p): i for i, p in enumerate(self.params)}
            # weakly: the layers belong to the stack, and a strong reference back would make a cycle that holds
            # every tensor of a finished stack until the garbage collector runs (in a sweep, stack after stack)
            update = weakref.WeakMethod(self._update)
            for mod in self.net.modules():
                if isinstance(mod, BLinear):
                    i = index[id(mod.weight)]
                    mod.fuse_momentum(self.bufs[i], s.momentum, functools.partial(_weak_call, update, i))
                    self.fused[i] = True
                    self.fused_layers.append(mod)
        self.active = torch.ones(self.M, dtype=torch.bool, device=self.device)
        self.all_active = True
        self.diverged_epoch = [-1] * self.M
        self.order_gens = [torch.Generator().manual_seed(seeds.int_seed(m.seed, "batch_order")) for m in members]
        random = any(m.dropout > 0 for m in members) or bool(getattr(self.net, "_drops", None))
        self.drop_gens = ([torch.Generator(device=self.device).manual_seed(seeds.int_seed(m.seed, "dropout"))
                           for m in members] if random else None)
        n = len(task.y_train)
        k = min(s.n_feature_images, n)
        self.feature_idx = torch.from_numpy(np.sort(seeds.rng(s.feature_seed, "features").choice(n, k, replace=False)))
        # Normalised once: each step then only gathers rows (the per-step uint8 -> float pass cost ~5% on a CPU).
        self.x_train = self.task.normalise(self.task.x_train).to(self.dtype)
        # Every input evaluate() reads, in one tensor, so all probe sets go through the models in one pass.
        parts = [self.task.x_train, self.task.x_val, *(x for x, _ in self.task.probes.values())]
        self.eval_sizes = [len(x) for x in parts]
        self.x_eval = self._shared(torch.cat(parts))
        self.epoch = 0
        self._chunk: int | None = None            # eval_chunk(), sized on first use (one forward pass)
        self._theta: torch.Tensor | None = None   # _implicit_bias's float64 buffer, allocated on first use
        self._batch: torch.Tensor | None = None   # _rows's buffer: the images of one step, allocated on first use
        if factory is not None:
            self._check_outputs()
        if s.compile:
            with tf32(s.precision == "tf32"):
                self.forward = self._checked_compile()

    def _checked_compile(self):
        """torch.compile(net), after checking that its gradients equal eager mode's on a few images.

        Seen on torch 2.13.0 (CPU build, inductor): the compiled B&L CNN returned zero gradients for
        every convolution, silently. A wrong gradient must never train a model, so a mismatch is an error.
        """
        compiled = torch.compile(self.net)
        saved = {k: v.clone() for k, v in self.net.state_dict().items()}  # batch norm updates its statistics
        n = min(4, len(self.task.y_train))
        idx = torch.arange(n, device=self.device).expand(self.M, n)
        x, y = self._layout(self.x_train[idx]), self.task.y_train[idx]
        grads = []
        for f in (self.net, compiled):
            for p in self.params:
                p.grad = None
            with self._autocast():
                logits = f(x)
            weighted_risk(self._logits_of(logits), y, self.c_train[:, :n], self.s.loss,
                          self.s.poly_alpha, self.s.loss_params).sum().backward()
            grads.append([torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.params])
            self.net.load_state_dict(saved)
        for p in self.params:
            p.grad = None
        tol = 5e-2 if self.s.precision == "bf16" else 1e-3
        for (name, _), ge, gc in zip(self.net.named_parameters(), *grads):
            scale = float(ge.abs().max())
            if float((ge - gc).abs().max()) > tol * max(scale, 1e-12):
                raise RuntimeError(
                    f"torch.compile changed the gradient of {name} (largest eager value {scale:.2e}, compiled "
                    f"{float(gc.abs().max()):.2e}) with torch {torch.__version__} on {self.device}; "
                    "train without compile")
        return compiled

    # ---- training ---------------------------------------------------------------------

    def per_param(self, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A per-model vector (M,) broadcast to parameter ``p``: its first axis is M (stacked) or M*C
        (concatenated), model-major either way."""
        rows = p.shape[0] // self.M
        return v.repeat_interleave(rows).reshape(-1, *([1] * (p.dim() - 1)))

    def _autocast(self):
        if self.s.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """(M, B, C, H, W) images (uint8, or already normalised in the engine's dtype) -> normalised
        (B, M*C, H, W), or (M, B, C*H*W) for an MLP."""
        if x.dtype != self.dtype:
            x = self.task.normalise(x).to(self.dtype)
        if not self.fast:
            return x
        M, B, C, H, W = x.shape
        if self.flat_input:
            return x.reshape(M, B, C * H * W)
        x = x.permute(1, 0, 2, 3, 4).reshape(B, M * C, H, W)
        return x.contiguous(memory_format=torch.channels_last) if self.s.channels_last else x

    def _weights(self, members: list[Member], y: torch.Tensor, field: str) -> torch.Tensor:
        """(M, N) per-example weights (float32): a member's own vector where it has one, else its class weights
        (``theory.checks.class_weights``: the one place labels become weights)."""
        labels = y.cpu().numpy()
        rows = []
        for m in members:
            w = getattr(m, field)
            if w is None:
                w = class_weights(labels, m.weight, m.wneg) if self.task.binary else np.ones(len(labels))
            rows.append(np.asarray(w, dtype=np.float32))
        return torch.from_numpy(np.stack(rows) if rows else np.zeros((self.M, 0), np.float32)).to(self.device)

    def _logits_of(self, out: torch.Tensor) -> torch.Tensor:
        """A population's output as logits in the engine's dtype: (M, B) for two classes, (M, B, K) for K."""
        if self.task.binary and out.dim() == 3:
            out = out[..., 0]
        return out.to(self.dtype)

    def _check_outputs(self) -> None:
        """A user's model must give (B,) or (B, 1) logits for two classes and (B, K) for K, before training."""
        with self._evaluating():
            out = self._forward_shared(self.x_eval[:2])
        check_logits(out.shape[1:], self.task.n_classes, 2, "the model's forward")

    @_in_precision
    def train_step(self, idx: torch.Tensor) -> torch.Tensor:
        """One SGD step of every model on its own batch ``idx`` (M, B); returns the per-model risk."""
        return self._step(idx)

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        x = self._layout(self._rows(idx))
        y = self.task.y_train[idx]
        with self._armed():
            with self._autocast():
                logits = self.forward(x, self.drop_gens)
            risk = weighted_risk(self._logits_of(logits), y, self.c_train.gather(1, idx), self.s.loss,
                                 self.s.poly_alpha, self.s.loss_params)
            for p in self.params:
                p.grad = None
            risk.sum().backward()  # models share no parameters, so each gets its own gradient
        for i, fused in enumerate(self.fused):
            if not fused:  # a fused weight was updated in the backward pass, as soon as its gradient was known
                self._update(i)
        return risk.detach()

    def plain_update(self) -> None:
        """Train from now on with autograd's own weight gradients and the update after the backward pass (no
        ``fuse_momentum``): bit for bit what a plain autograd step computes, at the speed it costs."""
        for mod in self.fused_layers:
            mod.momentum_buf, mod.after = None, None
        self.fused = [False] * len(self.params)
        self.fused_layers = []

    @contextlib.contextmanager
    def _armed(self):
        """The fused layers add their gradients into the momentum buffers and update their weights during
        this step's backward pass, and only then (``BLinear.armed``)."""
        for mod in self.fused_layers:
            mod.armed = True
        try:
            yield
        finally:
            for mod in self.fused_layers:
                mod.armed = False

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        """The training images ``idx`` (M, B) as (M, B, ...), copied by rows into one tensor reused every step.

        Why: the profiler charged advanced indexing into a new tensor 0.2-0.6 ms of the study's 4 ms step on a
        CPU (fresh pages for a 1.5 MB batch), a copy by rows into a reused tensor 0.07. The values are the same
        bytes. Overwriting is safe: the previous step's graph, which saved the batch, is gone."""
        x = self.x_train
        flat = x.reshape(len(x), -1)
        if self._batch is None or self._batch.shape[0] != idx.numel():
            self._batch = torch.empty(idx.numel(), flat.shape[1], dtype=x.dtype, device=x.device)
        return torch.index_select(flat, 0, idx.reshape(-1), out=self._batch).view(*idx.shape, *x.shape[1:])

    @torch.no_grad()
    def _update(self, i: int) -> None:
        """The SGD step of parameter ``i``: momentum (unless its gradient was added in the backward pass),
        weight decay, then the learning rate. In place on each tensor as it is laid out (a reshape of a
        channels_last weight would copy), fused where the members share lr or weight decay: on a CPU this is
        memory-bound."""
        p, buf, lr, wd = self.params[i], self.bufs[i], self.lr_p[i], self.wd_p[i]
        if not self.fused[i]:
            torch.add(p.grad, buf, alpha=self.s.momentum, out=buf)  # one pass over buf, not two
        if self.wd_scalar is None:
            buf.addcmul_(p, wd)
        elif self.wd_scalar:
            buf.add_(p, alpha=self.wd_scalar)
        if not self.all_active:  # a diverged model's weights stay frozen (models share nothing)
            p.copy_(torch.where(self.per_param(self.active, p), p - (lr * self.lr_factor) * buf, p))
        elif self.lr_scalar is None:
            p.addcmul_(lr, buf, value=-self.lr_factor)
        else:
            p.add_(buf, alpha=-self.lr_scalar * self.lr_factor)

    @property
    def steps_per_epoch(self) -> int:
        """floor(N / batch size): the optimisation steps of one epoch (static shapes)."""
        return len(self.task.y_train) // self.s.batch_size

    @_in_precision
    def train_epoch(self) -> torch.Tensor:
        """One epoch for every model; returns each model's mean training risk over the epoch."""
        n, B = len(self.task.y_train), self.s.batch_size
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.order_gens]).to(self.device)
        steps = self.steps_per_epoch
        total = torch.zeros(self.M, device=self.device)
        self.net.train()
        for k in range(steps):
            total += self._step(perms[:, k * B:(k + 1) * B])  # train_epoch holds the precision
        self.epoch += 1
        mean = total / steps
        bad = ~torch.isfinite(mean) & self.active
        if bool(bad.any()):
            for m in torch.nonzero(bad).flatten().tolist():
                self.diverged_epoch[m] = self.epoch
            self.active &= ~bad
            self.all_active = False
        return mean

    # ---- evaluation ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _evaluating(self):
        """Eval mode (batch-norm running statistics, no dropout), then back to the mode it was in:
        public reproductions lose dropout by never calling train() again after evaluating."""
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad(), self._autocast():
                yield
        finally:
            self.net.train(was_training)

    def _shared(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Images every model sees alike: normalised (N, C, H, W), in the engine's dtype and layout."""
        x = self.task.normalise(x_uint8).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.s.channels_last else x

    @_in_precision
    def logits(self, x: torch.Tensor, normalised: bool = False) -> torch.Tensor:
        """(M, N) logits of every model on shared images, in eval mode; ``normalised``: ``x`` already went
        through ``_shared``."""
        prep = (lambda v: v) if normalised else self._shared
        with self._evaluating():
            k = self.eval_chunk()
            chunks = range(0, len(x), k)
            return torch.cat([self._logits_of(self._forward_shared(prep(x[i:i + k])))
                              for i in chunks], dim=1)

    def eval_chunk(self) -> int:
        """Images per evaluation pass: the setting where one is given; else 1,000 for an MLP (its activations
        are small) and otherwise as many as keep the largest activation of the stack within EVAL_BYTES. The
        B&L CNN at width 0.25 evaluated 4x slower in chunks of 1,000 (a 390 MB activation per layer on a CPU)
        than in chunks of 50."""
        if self.s.eval_chunk:
            return self.s.eval_chunk
        if self._chunk is None:
            if self.flat_input or self.device.type != "cpu":
                self._chunk = 1000
            else:
                sizes = []
                hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(
                    out.numel() * out.element_size() if isinstance(out, torch.Tensor) else 0))
                    for m in self.net.modules() if not list(m.children())]
                try:
                    with self._evaluating():
                        self._forward_shared(self.x_eval[:1])
                finally:
                    for h in hooks:
                        h.remove()
                self._chunk = int(min(1000, max(16, EVAL_BYTES // max(max(sizes, default=1), 1))))
        return self._chunk

    def _forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x) if self.fast else self.forward(x, None, shared=True)

    @property
    def has_features(self) -> bool:
        """Whether the feature-space measurements apply: two classes and a model with features() and a
        linear head (the built-in models have both)."""
        return self.task.binary and self.net.has_features

    @_in_precision
    def features(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Penultimate features (M, k, F) of the fixed feature subset, last-layer weights (M, F) and biases (M,);
        None where the feature-space measurements do not apply (``has_features``)."""
        if not self.has_features:
            return None
        with self._evaluating():
            f = self.net.features(self._shared(self.task.x_train[self.feature_idx.to(self.device)])).float()
        w, b = last_layer(self.net) if self.fast else self.net.last_layer()
        return f, w.detach().float(), b.detach().float()

    @torch.no_grad()
    @_in_precision
    def evaluate(self) -> list[dict]:
        """Per-model metrics on the training set, the validation split (if any) and every probe set: loss,
        accuracy and balanced accuracy where a probe has labels, and the predicted share of each class
        (``frac_pos_<probe>`` for two classes, ``frac_class<k>_<probe>`` for K)."""
        t = self.task
        lt, lv, *lp = torch.split(self.logits(self.x_eval, normalised=True), self.eval_sizes, dim=1)
        probes = dict(zip(t.probes, lp))
        y = t.y_train[None, :]
        l_tr = self._example_loss(lt, t.y_train)
        res = {"train_loss_weighted": (self.c_train * l_tr).mean(1), "train_loss": l_tr.mean(1),
               "train_acc": self._correct(lt, t.y_train).float().mean(1)}
        for name, (_, yp) in t.probes.items():
            if yp is not None:
                lg = probes[name]
                res[f"{name}_loss"] = self._example_loss(lg, yp).mean(1)
                res[f"{name}_acc"] = self._correct(lg, yp).float().mean(1)
                res[f"{name}_balanced_acc"] = self._balanced(lg, yp)
        for name, lg in probes.items():
            if t.binary:
                res[f"frac_pos_{name}"] = (lg > 0).float().mean(1)
            else:
                pred = lg.argmax(-1)
                for k in range(t.n_classes):
                    res[f"frac_class{k}_{name}"] = (pred == k).float().mean(1)
        if len(t.y_val):
            l_va = self._example_loss(lv, t.y_val)
            res.update(val_loss=l_va.mean(1), val_acc=self._correct(lv, t.y_val).float().mean(1),
                       val_loss_weighted=(self.c_val * l_va).mean(1))
        res.update(self._implicit_bias(lt, y))
        cols = {k: v.cpu().numpy() for k, v in res.items()}
        rows = [{k: float(cols[k][m]) for k in cols} for m in range(self.M)]
        for r, k in zip(rows, self.partner):  # None where a quantity does not apply (no partner, not homogeneous)
            if k < 0:
                r["angle_unweighted"] = None
            r.setdefault("normalised_margin", None)
        return rows

    def _example_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(M, N) unweighted per-example losses of logits (M, N) or (M, N, K) against labels (N,)."""
        if not self.task.binary:
            return cross_entropy(logits, y)
        yy = y[None, :]
        return margin_loss(yy * logits, self.s.loss, self.s.poly_alpha, yy, self.s.loss_params)

    def _correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.task.binary:
            return logits.argmax(-1) == y[None, :]
        return (logits > 0) == (y[None, :] > 0)

    def _balanced(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean over the classes present in ``y`` of each class's recall."""
        if self.task.binary and bool((y > 0).any()) and bool((y < 0).any()):
            yy = y[None, :]
            return 0.5 * (((logits > 0) & (yy > 0)).float().sum(1) / (y > 0).sum()
                          + ((logits <= 0) & (yy < 0)).float().sum(1) / (y < 0).sum())
        labels = (y > 0).long() if self.task.binary else y
        pred = (logits > 0).long() if self.task.binary else logits.argmax(-1)
        recalls = [((pred == k) & (labels[None, :] == k)).float().sum(1) / (labels == k).sum()
                   for k in labels.unique().tolist()]
        return torch.stack(recalls).mean(0)

    def _implicit_bias(self, logits_train: torch.Tensor, y: torch.Tensor) -> dict:
        """Per model: the parameter norm; the angle between its parameter vector and its unweighted partner's;
        for a homogeneous net the normalised margin min_n y_n f(x_n) / |theta|^L on the training set."""
        # every parameter written once into one float64 buffer (a cat of converted copies made two passes),
        # then normalised in place: the same arithmetic on the same rows, so the same bits, in half the time
        if self._theta is None:
            self._theta = torch.empty(self.M, sum(p.numel() // self.M for p in self.params), dtype=torch.float64,
                                      device=self.device)
        at = 0
        for p in self.params:
            n = p.numel() // self.M
            shape = (self.M, p.shape[0] // self.M, *p.shape[1:])  # model-major first axis, split: always a view
            self._theta[:, at:at + n].view(shape).copy_(p.detach().view(shape))
            at += n
        theta = self._theta
        norm = theta.norm(dim=1)
        part = torch.as_tensor([max(k, 0) for k in self.partner], device=theta.device)
        u = theta.div_(norm[:, None].clamp_min(1e-300))
        v = u[part]
        # 2 atan2(|u - v|, |u + v|): exact for small angles, where arccos of a dot product keeps only ~1e-8 rad
        ang = 2 * torch.atan2((u - v).norm(dim=1), v.add_(u).norm(dim=1))
        out = {"param_norm": norm, "angle_unweighted": ang}
        if self.degree is not None:
            m_min = (y * logits_train).to(torch.float64).min(dim=1).values
            out["normalised_margin"] = m_min / norm.clamp_min(1e-300) ** self.degree
        return out

    # ---- checkpoints --------------------------------------------------------------------

    def state(self) -> dict:
        return {"epoch": self.epoch, "net": self.net.state_dict(), "bufs": [b.detach().clone() for b in self.bufs],
                "order_gens": [g.get_state() for g in self.order_gens],
                "drop_gens": [g.get_state() for g in self.drop_gens] if self.drop_gens else [],
                "active": self.active.clone(), "diverged_epoch": torch.tensor(self.diverged_epoch)}

    def state_bytes(self) -> bytes:
        """The whole training state, serialised (the checkpoint's payload)."""
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        return buf.getvalue()

    def load_bytes(self, payload: bytes) -> None:
        """Restore a state written by ``state_bytes`` (loaded with weights_only: no code runs)."""
        st = torch.load(io.BytesIO(payload), map_location=self.device, weights_only=True)
        if len(st["bufs"]) != len(self.bufs) or len(st["diverged_epoch"]) != self.M:
            raise ValueError(f"the state holds {len(st['diverged_epoch'])} models, this stack {self.M}")
        self.net.load_state_dict(st["net"])
        for b, v in zip(self.bufs, st["bufs"]):
            b.copy_(v)
        for g, v in zip(self.order_gens, st["order_gens"]):
            g.set_state(v.cpu())
        for g, v in zip(self.drop_gens or [], st["drop_gens"]):
            g.set_state(v.cpu())
        self.active.copy_(st["active"])
        self.all_active = bool(self.active.all())
        self.diverged_epoch = [int(v) for v in st["diverged_epoch"]]
        self.epoch = int(st["epoch"])
