"""reslab: ablation and hyperparameter studies of deep residual networks (He et al., 2016)."""

__version__ = "0.1.0"
