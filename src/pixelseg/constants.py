"""Constants shared by every layer: the loss, the metrics, augmentation padding and readers."""

# Pixels with this label are ignored by the loss and by every metric. Void classes of datasets
# (CamVid's 11, VOC's 255) and areas exposed by geometric augmentation are mapped to it.
IGNORE_INDEX = 255

# ImageNet statistics: a reasonable fixed normalisation for RGB photos. It is recorded in every
# checkpoint so that prediction reproduces training exactly.
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
