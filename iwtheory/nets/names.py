"""The legal names of the experiment half, owned here once.

No torch import: configs check names against these tuples before anything heavy is loaded.
Loss names are owned by ``iwtheory.theory.losses.LOSSES``.
"""

MODELS = ("bl_cnn", "mlp", "resnet")
PRECISIONS = ("fp32", "tf32", "bf16", "fp64")
DATASETS = ("cifar10", "fashion_mnist", "synthetic", "bl_toy", "arrays")
WEIGHT_NORMS = ("none", "mean")
# a net's unweighted partner: the model with weight 1 that agrees with it in these (a run's seed and settings)
PARTNER_FIELDS = ("seed", "lr", "weight_decay", "dropout")
MLP_HIDDEN = (512, 128)  # the MLP's hidden widths when a config names none
MAX_CNN_WIDTH = 4.0  # the B&L CNN's largest width factor (models.blcnn_widths): 4x the paper's channels


def mlp_widths(cfg: dict) -> list[int]:
    """The hidden widths of the MLP a resolved config (or ``config.json``) trains: none for ``linear``, its
    ``hidden`` list, else the default."""
    return [] if cfg.get("linear") else [int(h) for h in (cfg.get("hidden") or MLP_HIDDEN)]
