"""annkit: train and understand neural networks from config files."""

__version__ = "0.1.0"
