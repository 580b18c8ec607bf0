"""The CNN experiments' config: ``TrainConfig`` (a study's settings, strictly checked before anything is read or
allocated) and the resolved cells it sweeps. The runner that trains them is ``runs.train``."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import itertools
import math
import os
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from iwtheory.nets.names import DATASETS, MAX_CNN_WIDTH, MLP_HIDDEN, MODELS, PRECISIONS, WEIGHT_NORMS
from iwtheory.runs.config import ConfigError, check_distinct, check_kwargs
from iwtheory.theory.limits import COSINE, LIMIT_LOSSES, LOSS_PARAMS, class_coefficients, resolve_params

# Fields that change how fast a run goes, not what it computes; they stay out of the run hash.
ENGINEERING = ("name", "description", "source", "data_dir", "download", "device", "max_models", "compile",
               "channels_last", "checkpoint_every", "checkpoint_seconds", "eval_chunk", "data")
# (``data`` names where the arrays are read from: like ``data_dir``, not what they are. Their fingerprint is in
# every run's config.json, and a sweep refuses other data than its runs were trained on.)
SWEEP = ("weights", "seeds", "lrs", "weight_decays", "dropouts")
DRAWS = ("fixed", "seed")
# The other weightings' sweep axes (a user's task): each makes its cells' weighting key instead of ``weights``.
AXES = {"powers": "power", "class_weights": "class_weight", "vectors": "vector"}
# "package.module:attribute": a factory (seed -> nn.Module) or a data loader in an importable module
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
SPEC = re.compile(f"^{_DOTTED}:{_DOTTED}$")
BUILTIN_ONLY = ("hidden", "linear", "batchnorm", "bias", "width")
# Ranges a config's values are checked against before anything is allocated (beyond them a run overflows,
# underflows to zero or cannot fit in memory; none is a setting anybody trains with).
WEIGHT_RANGE = (1e-8, 1e8)
MAX_LR = 1e3
MAX_WIDTH = 100_000
MAX_CELLS = 100_000
LIMITS = {"epochs": 10**6, "batch_size": 10**6, "n_pos": 10**7, "n_neg": 10**7, "max_test": 10**7,
          "max_other": 10**7, "noise_count": 10**6, "n_feature_images": 10**6, "eval_points": 10**4,
          "eval_dense": 10**6, "eval_tail": 10**4, "record_points": 10**4, "max_models": 10**4, "eval_chunk": 10**6}
IN_FEATURES = {"fashion_mnist": 784, "cifar10": 3072, "bl_toy": 2}


def memory_bytes() -> int:
    """This machine's physical memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def stack_bytes(cfg, models: int) -> int:
    """Bytes of parameters, gradients and momentum of ``models`` MLPs of ``cfg`` (0 for the fixed CNNs, whose
    size the engine's own checks bound)."""
    if cfg.model != "mlp":
        return 0
    shape = (cfg.synthetic or {}).get("shape", (3, 32, 32)) if cfg.dataset == "synthetic" else None
    d = int(np.prod(shape)) if shape is not None else IN_FEATURES.get(cfg.dataset, 3072)
    widths = [d, *(cfg.hidden_widths if cfg.hidden_widths is not None else MLP_HIDDEN), 1]
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    return 3 * 4 * params * models


@dataclass
class TrainConfig:
    """A CNN experiment; ``weights`` are the positive class's weight (the negative class weighs 1)."""

    name: str
    description: str = ""
    source: str = ""               # where the hyperparameters come from
    regime: str = "none"           # label for tables: none | l2 | dropout | batchnorm | subsample | ...
    baseline: str = ""             # the regime this one's claims compare with (a matched unregularised arm: same
                                   # widths and schedule); empty: the study's none
    dataset: str = "cifar10"       # one of nets.names.DATASETS
    data_dir: str = ""
    download: bool = False
    pos: str = "dog"
    neg: str = "cat"
    keep_pos: float = 1.0          # share of the positive class's training images kept
    keep_neg: float = 1.0
    n_pos: int = 0                 # or an exact count (0: use keep_pos)
    n_neg: int = 0
    val_fraction: float = 0.0      # share of each class held out for validation (early stopping)
    label_noise: float = 0.0       # share of the training labels flipped (a non-separable control)
    subsample_seed: int = 0        # subsampling, validation split, label noise, probe subsets, noise images
    draws: str = "fixed"           # fixed: every seed trains on the draw of subsample_seed | seed: seed s on its own
                                   # draw, subsample_seed + s (so the seeds' spread includes the data's)
    max_test: int = 0              # at most this many of the task's test images (0: all)
    max_other: int = 2000
    noise_count: int = 1000
    model: str = "bl_cnn"          # one of nets.names.MODELS, or "package.module:factory" (seed -> nn.Module)
    model_args: dict = field(default_factory=dict)  # keyword arguments of a factory: factory(seed, **model_args)
    data: str = ""                 # dataset "arrays": "file.npz" (x, y, weights, probe_*) or "package.module:loader"
    powers: list[float] = field(default_factory=list)  # sweep powers r^p of the task's per-example weights
    class_weights: list[list[float]] = field(default_factory=list)  # K classes: one weight per class, per model
    vectors: list[str] = field(default_factory=list)  # explicit weight vectors of the task, by name ("uniform" too)
    hidden: list[int] = field(default_factory=list)  # MLP widths (empty: the MLP's default, MLP_HIDDEN)
    linear: bool = False           # an MLP without hidden layers (hidden must then be empty)
    width: float = 1.0             # the B&L CNN's width factor: channels and FC widths scaled together
    batchnorm: bool = False
    bias: bool = True              # False: an MLP without biases, positively homogeneous (recorded only if False)
    dropouts: list[float] = field(default_factory=lambda: [0.0])
    weights: list[float] = field(default_factory=lambda: [1.0])
    weight_norm: str = "none"      # none: negatives weigh 1 | mean: weights rescaled to mean 1 over the training set
    seeds: list[int] = field(default_factory=lambda: [0])
    lrs: list[float] = field(default_factory=lambda: [0.1])
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    momentum: float = 0.9
    lr_decay: float = 0.0          # share of the last epochs over which the learning rate falls linearly (0: constant)
    batch_size: int = 16
    epochs: int = 10
    loss: str = "logistic"
    poly_alpha: float = 1.0
    loss_params: dict = field(default_factory=dict)  # binary or paper parameters (theory.limits.from_paper)
    weight_power: float = 1.0      # train with the exponentiated class weight w^p (Wang et al. 2022)
    eval_dense: int = 20           # evaluate every epoch up to here, then log-spaced
    eval_points: int = 30
    eval_tail: int = 0             # and this many evenly spaced over the last tenth (the late window)
    record_points: int = 8         # log-spaced epochs with last layer and features saved
    n_feature_images: int = 256
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    max_models: int = 108
    checkpoint_every: int = 1      # epochs between checkpoints ...
    checkpoint_seconds: float = 0.0  # ... and at least this many seconds (a checkpoint of a small stack costs an epoch)
    eval_chunk: int = 0            # images per evaluation pass (0: the engine sizes it, nets.engine.EVAL_BYTES)
    synthetic: dict = field(default_factory=dict)  # synthetic_images() or bl_toy() arguments

    def validate(self) -> None:
        def need(ok: bool, what: str):
            if not ok:
                raise ConfigError(f"{self.name}: {what}")

        need(bool(self.name), "name must not be empty")
        need(isinstance(self.baseline, str) and (not self.baseline or bool(re.fullmatch(r"[a-z][a-z0-9_]*",
                                                                                       self.baseline))),
             f"baseline must name a regime (a lower-case identifier); got {self.baseline!r}")
        need(self.dataset in DATASETS, f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        need(self.model in MODELS or bool(SPEC.match(self.model)) or hasattr(self, "_factory"),
             f"unknown model {self.model!r}; choose one of {MODELS} or name a factory as 'package.module:function'")
        if self.custom_model:
            for key in BUILTIN_ONLY:
                default = TrainConfig.__dataclass_fields__[key]
                value = default.default if default.default_factory is dataclasses.MISSING else default.default_factory()
                need(getattr(self, key) == value, f"{key} is a setting of the built-in models; a factory's model "
                     "takes its settings from model_args")
            need(self.dropouts == [0.0], "dropouts is a setting of the built-in models; a factory's model has its own "
                 "nn.Dropout modules (set their rate through model_args)")
        else:
            need(not self.model_args, "model_args are the keyword arguments of a model factory; a built-in model "
                 "takes hidden, linear, batchnorm, bias and dropouts")
        need(not self.data or self.dataset == "arrays",
             "data names the arrays of dataset = 'arrays' (a .npz file or 'package.module:loader')")
        if self.data:
            need(self.data.endswith(".npz") or bool(SPEC.match(self.data)),
                 f"data must be a .npz file or 'package.module:loader'; got {self.data!r}")
        need(sum(map(bool, (self.powers, self.class_weights, self.vectors))) <= 1,
             "powers, class_weights and vectors are three weightings: choose one")
        need(not self.vectors or "uniform" in self.vectors, "vectors must include 'uniform' (the unweighted partner)")
        need(len(set(self.vectors)) == len(self.vectors), f"vectors lists a name twice: {self.vectors}")
        if self.powers or self.class_weights or self.vectors:
            need(self.weights == [1.0], "weights (the positive class's weight) is the binary class weighting; with "
                 "powers, class_weights or vectors leave it out")
        need(all(abs(p) <= 64 for p in self.powers), f"powers must lie in [-64, 64]; got {self.powers}")
        need(len(set(self.powers)) == len(self.powers), f"powers lists a value twice: {self.powers}")
        for cw in self.class_weights:
            need(len(cw) >= 2 and all(WEIGHT_RANGE[0] <= w <= WEIGHT_RANGE[1] for w in cw),
                 f"class_weights: each entry is one weight per class in [{WEIGHT_RANGE[0]:g}, "
                 f"{WEIGHT_RANGE[1]:g}]; got {cw}")
        need(len({len(cw) for cw in self.class_weights}) <= 1, "class_weights: every entry needs one weight per class")
        need(self.loss in LIMIT_LOSSES, f"unknown loss {self.loss!r}; choose one of {LIMIT_LOSSES}")
        need(self.bias or self.custom_model or (self.model == "mlp" and not self.batchnorm),
             "bias = false (a homogeneous net) is an MLP setting without batch norm")
        need(self.loss not in COSINE or (self.model == "mlp" and not self.linear),
             f"the {self.loss} loss trains a cosine classifier (Cao et al. 2019), which only the MLP (with hidden "
             "layers) has here: use label_margin, the same loss on an unnormalised logit")
        if not isinstance(self.loss_params, dict):
            raise ConfigError(f"{self.name}: loss_params must be a table; got {self.loss_params!r}")
        # counts = "train": the papers' recipe, the class counts of the training set each run draws (resolved by the
        # runner from its task); checked here with stand-in counts
        from_train = self.loss_params.get("counts") == "train"
        try:  # the papers' parameters (counts, priors, tau, gamma, max_m, s) become the binary ones here
            params = {**self.loss_params, "counts": (1, 1)} if from_train else self.loss_params
            resolved = resolve_params(self.loss, params) if self.loss in LOSS_PARAMS else params
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.name}: loss_params: {e}") from None
        if not from_train:
            self.loss_params = resolved
        allowed = LOSS_PARAMS.get(self.loss, set()) | ({"base"} if self.loss in LOSS_PARAMS else set())
        need(set(resolved) <= allowed, f"loss_params {sorted(resolved)} do not fit the "
             f"{self.loss} loss (it takes {sorted(allowed) or 'none'}, or its paper's parameters)")
        if resolved:
            try:
                class_coefficients(self.loss, **{k: v for k, v in resolved.items() if k != "base"})
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{self.name}: loss_params: {e}") from None
        need(self.weight_power > 0, f"weight_power must be positive; got {self.weight_power}")
        need(self.draws in DRAWS, f"draws must be one of {DRAWS} (fixed: one draw of the data for every seed; seed: "
             f"each seed its own); got {self.draws!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        need(self.weight_norm in WEIGHT_NORMS, f"weight_norm must be one of {WEIGHT_NORMS}")
        for key in SWEEP:
            need(len(getattr(self, key)) > 0, f"{key} must not be empty")
        need(all(w > 0 for w in self.weights), f"weights must be positive numbers; got {self.weights}")
        # compared in logs: w ** weight_power itself may overflow
        need(all(abs(math.log10(w) * self.weight_power) <= math.log10(WEIGHT_RANGE[1]) for w in self.weights),
             f"class weights (w^weight_power) must lie in [{WEIGHT_RANGE[0]:g}, {WEIGHT_RANGE[1]:g}]; "
             f"got {self.weights}")
        need(all(0 < lr <= MAX_LR for lr in self.lrs), f"learning rates must lie in (0, {MAX_LR:g}]; got {self.lrs}")
        need(all(0 <= wd <= MAX_LR for wd in self.weight_decays),
             f"weight decays must lie in [0, {MAX_LR:g}]; got {self.weight_decays}")
        for key, top in LIMITS.items():
            need(getattr(self, key) <= top, f"{key} must be at most {top:g}; got {getattr(self, key)}")
        need(all(h <= MAX_WIDTH for h in self.hidden), f"hidden widths must be at most {MAX_WIDTH}; got {self.hidden}")
        need(all(s < 2**31 for s in self.seeds), f"seeds must be below 2^31; got {self.seeds}")
        n_cells = len(self.weights) * len(self.seeds) * len(self.lrs) * len(self.weight_decays) * len(self.dropouts)
        need(n_cells <= MAX_CELLS, f"the sweep has {n_cells} models, more than {MAX_CELLS}")
        need_bytes = stack_bytes(self, min(n_cells, self.max_models))
        need(need_bytes <= memory_bytes() // 2, f"a stack of {min(n_cells, self.max_models)} models needs about "
             f"{need_bytes / 2**30:.1f} GiB for its parameters, gradients and momentum, more than half this "
             f"machine's {memory_bytes() / 2**30:.0f} GiB; lower max_models or the widths")
        need(all(0 <= p < 1 for p in self.dropouts), f"dropout rates must lie in [0, 1); got {self.dropouts}")
        need(self.eval_chunk >= 0, f"eval_chunk must be >= 0 (0: sized by the engine); got {self.eval_chunk}")
        for key in ("epochs", "batch_size", "max_models", "checkpoint_every", "eval_points",
                    "record_points", "n_feature_images"):
            need(getattr(self, key) >= 1, f"{key} must be at least 1; got {getattr(self, key)}")
        for key in ("eval_dense", "eval_tail", "max_test", "max_other", "noise_count", "n_pos", "n_neg",
                    "subsample_seed"):
            need(getattr(self, key) >= 0, f"{key} must be >= 0; got {getattr(self, key)}")
        need(all(s >= 0 for s in self.seeds), f"seeds must be >= 0; got {self.seeds}")
        need(self.checkpoint_seconds >= 0, f"checkpoint_seconds must be >= 0; got {self.checkpoint_seconds}")
        need(0 < self.keep_pos <= 1 and 0 < self.keep_neg <= 1, "keep_pos and keep_neg must lie in (0, 1]")
        need(0 <= self.val_fraction < 1, f"val_fraction must lie in [0, 1); got {self.val_fraction}")
        need(0 <= self.label_noise < 0.5, f"label_noise must lie in [0, 0.5); got {self.label_noise}")
        need(0 <= self.momentum < 1, f"momentum must lie in [0, 1); got {self.momentum}")
        need(isinstance(self.lr_decay, (int, float)) and not isinstance(self.lr_decay, bool)
             and 0 <= self.lr_decay <= 1, f"lr_decay must lie in [0, 1]; got {self.lr_decay!r}")
        need(self.poly_alpha > 0, f"poly_alpha must be positive; got {self.poly_alpha}")
        need(all(h >= 1 for h in self.hidden), f"hidden widths must be positive; got {self.hidden}")
        need(not (self.hidden or self.linear) or self.model == "mlp" or self.custom_model,
             "hidden and linear are MLP settings")
        need(not (self.hidden and self.linear), "a linear model has no hidden widths")
        need(isinstance(self.width, (int, float)) and not isinstance(self.width, bool)
             and 0 < self.width <= MAX_CNN_WIDTH, f"width must lie in (0, {MAX_CNN_WIDTH}]; got {self.width!r}")
        need(self.width == 1.0 or self.model == "bl_cnn", "width is a setting of the B&L CNN (bl_cnn)")
        need(not (self.batchnorm and self.model == "mlp" and self.linear), "a linear model has no batch norm")
        if self.dataset in ("synthetic", "bl_toy"):
            from iwtheory.nets.data import synthetic_images

            check_kwargs(synthetic_images if self.dataset == "synthetic" else _toy_arguments,
                         self.synthetic, f"{self.name}: synthetic")
        elif self.synthetic:
            raise ConfigError(f"{self.name}: 'synthetic' settings apply to the synthetic and bl_toy datasets only")
        check_distinct(self.name, self.cells(), "weight, seed, lr, weight decay or dropout")

    def cells(self) -> list[dict]:
        """One resolved config per model, without the engineering fields."""
        base = {k: v for k, v in asdict(self).items() if k not in ENGINEERING and k not in SWEEP and k not in AXES}
        base["experiment"] = self.name
        base["kind"] = "train"
        draws = base.pop("draws")  # the cells' subsample_seed says which draw each trains on
        if not base.pop("bias"):  # with biases (the default) the key stays out, so earlier runs keep their hashes
            base["bias"] = False
        if base["width"] == 1.0:  # the paper's width: the key stays out, as for bias
            base.pop("width")
        if not base["lr_decay"]:  # a constant learning rate: likewise
            base.pop("lr_decay")
        if not base["baseline"]:  # the study's none: likewise
            base.pop("baseline")
        if not base["model_args"]:  # likewise a factory's arguments: in the cell only when given
            base.pop("model_args")
        if self.custom_model:
            base["model_signature"] = self.model_signature()
        swept = next((k for k in AXES if getattr(self, k)), None)
        axis = ([(AXES[swept], list(v) if isinstance(v, list) else v) for v in getattr(self, swept)] if swept
                else [("weight", w) for w in self.weights])
        return [dict(base, **{k: v}, seed=s, lr=lr, weight_decay=wd, dropout=p,
                     subsample_seed=self.draw_of(s) if draws == "seed" else self.subsample_seed)
                for (k, v), s, lr, wd, p in itertools.product(axis, self.seeds, self.lrs,
                                                              self.weight_decays, self.dropouts)]

    def draw_of(self, seed: int) -> int:
        """The ``subsample_seed`` a model of this seed trains on: its own draw with ``draws = "seed"``."""
        return self.subsample_seed + int(seed) if self.draws == "seed" else self.subsample_seed

    def for_draw(self, subsample_seed: int) -> "TrainConfig":
        """This config with one draw of the data (a cell's ``subsample_seed``): what a stack's task is built from."""
        if subsample_seed == self.subsample_seed and self.draws == "fixed":
            return self
        out = copy.copy(self)
        out.subsample_seed, out.draws = int(subsample_seed), "fixed"
        return out

    @property
    def custom_model(self) -> bool:
        """Whether the model is a user's factory ("package.module:function") rather than a built-in name."""
        return self.model not in MODELS

    def factory(self):
        """The model factory as a function of the seed: ``factory(seed, **model_args)``; None for a built-in model.
        Importing the factory's module runs its code, as running a script would."""
        if not self.custom_model:
            return None
        if hasattr(self, "_factory"):  # given as a function in memory (``iwtheory.Study``)
            return self._factory
        fn = resolve(self.model, f"{self.name}: model")
        args = dict(self.model_args)
        return (lambda seed: fn(seed, **args)) if args else fn

    def model_signature(self) -> list[str]:
        """The parameter names and shapes of the factory's model (part of the run identity)."""
        if not hasattr(self, "_signature"):
            from iwtheory.nets.engine import build_member
            from iwtheory.nets.population import signature_text

            try:  # seeded as the engine builds it, so building it here moves no random stream of the caller's
                module = build_member(self.factory(), 0)
            except ConfigError:
                raise
            except Exception as e:
                raise ConfigError(f"{self.name}: model {self.model} failed to build a model for seed 0 "
                                  f"({type(e).__name__}: {e})") from None
            self._signature = signature_text(module)
        return self._signature

    @property
    def hidden_widths(self) -> tuple | None:
        if self.linear:
            return ()
        return tuple(self.hidden) if self.hidden else None


def resolve(spec: str, what: str):
    """The attribute a "package.module:attribute" spec names; one ConfigError line when it cannot be imported."""
    if not isinstance(spec, str) or not SPEC.match(spec):
        raise ConfigError(f"{what}: expected 'package.module:attribute', got {spec!r}")
    mod, attr = spec.split(":")
    try:
        obj = importlib.import_module(mod)
    except Exception as e:
        raise ConfigError(f"{what}: cannot import {mod!r} ({type(e).__name__}: {e}); it must be importable "
                          "(on the path, or installed)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what}: {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{what}: {spec} is not callable")
    return obj


def _toy_arguments(n_per_class: int = 50, seed: int = 0, n_test: int = 1000, angle_deg: float = 60.0,
                   shift: tuple[float, float] = (0.5, 3.0), scales: tuple[float, float] = (1.0, 0.3)):
    """The 2-D toy task's settings: bl_toy()'s, and the size of its test sample (drawn with seed + 1)."""
