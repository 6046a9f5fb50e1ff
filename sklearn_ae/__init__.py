"""scikit-learn compatible autoencoders built on PyTorch and skorch."""

from ._autoencoder import AutoencoderTransformer
from ._outlier import AEOutlierDetector
from ._persistence import load, save
from ._scoring import neg_reconstruction_error
from ._vae import VAETransformer

__version__ = "0.1.0.dev0"

__all__ = [
    "AEOutlierDetector",
    "AutoencoderTransformer",
    "VAETransformer",
    "neg_reconstruction_error",
    "__version__",
    "load",
    "save",
]
