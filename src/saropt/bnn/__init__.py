"""Bridge Neural Network (BNN): two separate encoders projecting SAR and optical patches into a
common n-dimensional code space where true pairs are close (d -> 0) and false pairs far (d -> 1).

Papers: 003 section 2.1 (equations 1-4) and 4.2.1 (settings); 002 section III-A.
"""

from saropt.bnn.config import BNNConfig
from saropt.bnn.loss import bnn_loss
from saropt.bnn.model import BNN, Encoder, create_encoder, distance

__all__ = ["BNN", "BNNConfig", "Encoder", "bnn_loss", "create_encoder", "distance"]
