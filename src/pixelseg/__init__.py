"""pixelseg: semantic segmentation with CNN and recurrent models, trained from scratch."""

__version__ = "0.1.0"
