"""Shared torch building blocks: JSON model configs, transformer layers, the training loop."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "JSONConfig": "creditsim.nn.config",
    "CausalSelfAttention": "creditsim.nn.layers",
    "MLP": "creditsim.nn.layers",
    "Block": "creditsim.nn.layers",
    "TrainConfig": "creditsim.nn.trainer",
    "TrainResult": "creditsim.nn.trainer",
    "fit": "creditsim.nn.trainer",
})
