"""edgeseg: train, export, run and benchmark image-segmentation models for real-time edge devices."""

__version__ = "0.1.0"
