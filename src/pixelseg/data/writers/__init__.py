"""Dataset writers, one per format: the way out that matches each reader in ``readers/``."""
