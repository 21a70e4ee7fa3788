"""Bridge Neural Network (BNN): SAR-optical patch matching in a common code space.

Two separate encoders project SAR and optical patches into a common n-dimensional code space
where true pairs are close (d -> 0) and false pairs far (d -> 1). The BNN is Xu et al., AAAI 2019;
saropt follows paper 003: section 2.1 (equations 1-5: distance :func:`distance`, loss
:mod:`saropt.bnn.loss`) and 4.2.1 (training settings, :class:`BNNConfig`); paper 002 section
III-A and Table II report the matching results.

Names load lazily, so ``saropt --help`` does not import torch.
"""

from typing import TYPE_CHECKING

from saropt.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from saropt.bnn.config import BNNConfig  # noqa: F401
    from saropt.bnn.loss import bnn_loss  # noqa: F401
    from saropt.bnn.model import BNN, Encoder, create_encoder, distance  # noqa: F401

_EXPORTS = {"BNNConfig": "config", "bnn_loss": "loss", "BNN": "model", "Encoder": "model",
            "create_encoder": "model", "distance": "model"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
