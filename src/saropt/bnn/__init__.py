"""Bridge Neural Network (BNN): two separate encoders projecting SAR and optical patches into a
common n-dimensional code space where true pairs are close (d -> 0) and false pairs far (d -> 1).

Papers: 003 section 2.1 (equations 1-4) and 4.2.1 (settings); 002 section III-A.

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
