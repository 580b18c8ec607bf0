"""The nonlinear experiments (torch): data, models, many-models-at-once training."""
