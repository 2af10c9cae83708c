"""pixelseg: semantic segmentation with CNN and recurrent models, trained from scratch.

>>> import pixelseg
>>> cfg = pixelseg.load_config(overrides=["data.root=my_data", "model.name=unet"])  # doctest: +SKIP
>>> result = pixelseg.train(cfg)                      # doctest: +SKIP
>>> predictor = pixelseg.load(result.run_dir)        # doctest: +SKIP
>>> class_map = predictor.predict(image)             # doctest: +SKIP
>>> pixelseg.robustness(result.run_dir).result.table()  # doctest: +SKIP
"""

from .analysis.robustness_workflow import RunRobustness, robustness
from .analysis.seeds import SeedsResult, train_seeds
from .config import RunConfig, load_config
from .deploy.predict import Predictor, load
from .engine.trainer import TrainResult, resume, train
from .errors import PixelsegError
from .models import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "RunConfig",
    "load_config",
    "Predictor",
    "load",
    "TrainResult",
    "resume",
    "train",
    "PixelsegError",
    "create_model",
    "list_models",
    "RunRobustness",
    "robustness",
    "SeedsResult",
    "train_seeds",
]
