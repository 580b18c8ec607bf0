"""The legal names of the experiment half, owned here once.

No torch import: configs check names against these tuples before anything heavy is loaded.
Loss names are owned by ``iwtheory.theory.losses.LOSSES``.
"""

MODELS = ("bl_cnn", "mlp", "resnet")
PRECISIONS = ("fp32", "tf32", "bf16", "fp64")
DATASETS = ("cifar10", "fashion_mnist", "synthetic", "bl_toy")
WEIGHT_NORMS = ("none", "mean")
# a net's unweighted partner: the model with weight 1 that agrees with it in these (a run's seed and settings)
PARTNER_FIELDS = ("seed", "lr", "weight_decay", "dropout")
