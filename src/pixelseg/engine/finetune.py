"""Fine-tuning a pretrained encoder: what differs from training a model from scratch.

Four rules, each a ``train.*`` key, with defaults measured on CamVid val (the first three:
lightseg 32 wide over Lite0, 180x240, batch 8, 5-minute runs, one seed; the last: the plan's
30-minute runs, two seeds; docs/pretrained.md):
- ``train.encoder_bn``: ``frozen`` keeps the encoder's BatchNorm statistics at ImageNet's
  (its layers stay in eval mode; their scale and shift still learn), which a CPU's small
  batches estimate badly; ``train`` updates them like the rest of the model. Measured: 0.573
  frozen against 0.529 updated, the largest effect of the three.
- ``train.encoder_lr_scale``: the encoder learns at this fraction of ``train.lr``. With frozen
  statistics 0.1, 0.3 and 1.0 gave 0.573, 0.580 and 0.587: 0.3 is within noise of the best
  and moves the ImageNet features less, which matters most on small datasets.
- ``train.freeze_encoder_epochs``: the encoder's learning rate is 0 for the first epochs, so
  the decoder can settle on fixed features first. Measured: 2 frozen epochs gave 0.571, no
  gain, so the default is 0.
- ``train.encoder_frozen_stride``: the encoder's layers up to its features at that stride
  (the stem and first stages) keep their pretrained weights and statistics for the whole run.
  Those layers work at the largest sizes, so not back-propagating through them makes a
  training step of lightseg 32 wide over Lite0 at 360x480 ~35% faster (stride 4) while
  freezing only ~16k of its parameters: 29 epochs in 30 minutes instead of 19-21, val 0.688
  and 0.691 against 0.673 and 0.679.
And one for every model: with ``train.weight_decay`` > 0, norms and biases are not decayed
(decaying a BatchNorm scale only fights the normalisation it follows).

A model has a pretrained encoder when its ``encoder`` knob names one and ``pretrained`` is not
``none``; otherwise every parameter is in the ordinary groups and these keys change nothing.
"""

from __future__ import annotations

from torch import nn

from ..config import TrainConfig
from ..data.transforms import Normalizer
from ..models.encoders import Encoder


def model_encoder(model: nn.Module) -> Encoder | None:
    """The model's ``Encoder`` (None for a native one)."""
    encoder = getattr(model, "encoder", None)
    return encoder if isinstance(encoder, Encoder) else None


def pretrained_encoder(model: nn.Module) -> Encoder | None:
    """The model's encoder when it starts from weights (``pretrained`` is not ``none``)."""
    encoder = model_encoder(model)
    return encoder if encoder is not None and encoder.pretrained != "none" else None


def input_normalizer(model: nn.Module) -> Normalizer:
    """The normalisation the model's encoder was trained with; pixelseg's default otherwise."""
    encoder = model_encoder(model)
    norm = encoder.normalization if encoder is not None else None
    return Normalizer(**norm) if norm else Normalizer()


def param_groups(model: nn.Module, t: TrainConfig) -> list[dict]:
    """Optimizer groups: (encoder or not) x (decayed or not), empty ones left out. Each group
    carries ``lr_scale`` (its share of the scheduled lr) and ``encoder`` (frozen first)."""
    encoder = pretrained_encoder(model)
    in_encoder = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        # Norm scales/shifts and biases are 1-D: never decayed (when decay is on at all).
        decayed = t.weight_decay > 0 and p.ndim > 1
        groups.setdefault((id(p) in in_encoder, decayed), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": t.weight_decay if decayed else 0.0,
            "lr_scale": t.encoder_lr_scale if is_encoder else 1.0,
            "encoder": is_encoder,
        }
        for (is_encoder, decayed), params in groups.items()
    ]


def group_lr(group: dict, lr: float, epoch: int, t: TrainConfig) -> float:
    """The lr of one group at ``epoch`` (1-based) when the schedule gives ``lr``."""
    if group.get("encoder") and epoch <= t.freeze_encoder_epochs:
        return 0.0
    return lr * group.get("lr_scale", 1.0)


def freeze_encoder_layers(model: nn.Module, stride: int) -> int:
    """Before the optimizer is made: the pretrained encoder's layers up to its stride-``stride``
    features stop learning (``train.encoder_frozen_stride``; 0 = none). An encoder built only
    shallower than ``stride`` (ReSeg over stride-2 features) freezes up to its deepest feature.
    Returns how many parameters were frozen (0 for a model without a pretrained encoder)."""
    encoder = pretrained_encoder(model)
    if encoder is None or stride == 0:
        return 0
    frozen = 0
    for layer in encoder.layers_through(min(stride, max(encoder.strides))):
        for p in layer.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def freeze_encoder_norms(model: nn.Module, t: TrainConfig) -> None:
    """After ``model.train()``: with ``train.encoder_bn=frozen``, the pretrained encoder's
    BatchNorm layers go back to eval mode (ImageNet statistics, not the batch's); with
    ``train``, those of the frozen first layers still do (their weights do not learn either)."""
    encoder = pretrained_encoder(model)
    if encoder is None:
        return
    for m in encoder.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            learning = any(p.requires_grad for p in m.parameters())
            if t.encoder_bn == "frozen" or not learning:
                m.eval()
