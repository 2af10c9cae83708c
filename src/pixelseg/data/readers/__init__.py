"""One module per on-disk dataset format; each registers itself with ``formats.register_format``."""
