"""Training and evaluation: loops, losses, checkpoints, device and distributed helpers."""
