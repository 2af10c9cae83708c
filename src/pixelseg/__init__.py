"""pixelseg: semantic segmentation with CNN and recurrent models, trained from scratch.

>>> import pixelseg
>>> cfg = pixelseg.load_config(overrides=["data.root=my_data", "model.name=unet"])  # doctest: +SKIP
>>> result = pixelseg.train(cfg)                      # doctest: +SKIP
>>> predictor = pixelseg.load(result.run_dir)        # doctest: +SKIP
>>> class_map = predictor.predict(image)             # doctest: +SKIP
>>> pixelseg.robustness(result.run_dir).result.table()  # doctest: +SKIP
>>> pixelseg.serve(result.run_dir, port=8000)         # doctest: +SKIP
"""

# Every command is a call of one of these (cli/ parses the arguments and calls it).
from .analysis.evaluation import evaluate_run, save_eval
from .analysis.run_report import build_run_report, finish_run
from .config import RunConfig, load_config
from .data.check import check_dataset
from .data.convert import convert_dataset
from .deploy.batch import predict_stream
from .deploy.onnx_export import export_onnx
from .deploy.predict import Predictor, load
from .deploy.predict_images import predict_images
from .deploy.serve import serve
from .deploy.serve.limits import ServeLimits
from .engine.trainer import TrainResult, resume, train
from .errors import PixelsegError
from .models import create_model, list_models
from .models.summary import ModelSummary, summarize
from .tuning.options import TuneOptions
from .tuning.plan import plan_for_config
from .workflows.demo import DemoResult, demo
from .workflows.plan import plan_training
from .workflows.rank import RankResult, rank_images, rank_labels
from .workflows.robustness import RunRobustness, robustness
from .workflows.seeds import SeedsResult, train_seeds
from .workflows.train import train_and_report
from .workflows.tune import run_study

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
    "evaluate_run",
    "save_eval",
    "build_run_report",
    "check_dataset",
    "rank_images",
    "rank_labels",
    "RankResult",
    "convert_dataset",
    "predict_stream",
    "export_onnx",
    "TuneOptions",
    "plan_for_config",
    "run_study",
    "DemoResult",
    "demo",
    "serve",
    "ServeLimits",
    "ModelSummary",
    "summarize",
    "finish_run",
    "train_and_report",
    "predict_images",
    "plan_training",
]
