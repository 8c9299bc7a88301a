"""Datasets without TensorFlow: readers per layout, sources with weights, outline handling.

Used by training (through :mod:`edgeseg.trainer.data`'s tf.data pipeline), export checks, calibration,
``evaluate`` and ``bench``; only tfds's Oxford-IIIT Pet download needs the ``train`` extra.
"""

from edgeseg.data.outline import Outline
from edgeseg.data.readers import (
    SPLITS, TFDS_NAME, DataError, SegmentationData, Split, as_hw, backgrounds_root, check_source, iter_full_resolution,
    load_backgrounds, load_folder, load_split, source_here,
)
from edgeseg.data.sources import DataSource, concatenate, load_sources, parse_sources

__all__ = ["SPLITS", "TFDS_NAME", "DataError", "DataSource", "Outline", "SegmentationData", "Split", "as_hw",
           "backgrounds_root", "check_source", "concatenate",
           "iter_full_resolution", "load_backgrounds", "load_folder", "load_sources", "load_split", "parse_sources",
           "source_here"]
