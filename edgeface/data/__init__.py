"""Face data (numpy + opencv only): readers for every supported data set, alignment into crops, the crop cache,
splits, augmentation and the SYNTHETIC set.

Importing the package registers every reader (``datasets``: utkface, csv, morph, fgnet, scut; ``celeba``:
celeba, attributes-csv), so :func:`edgeface.data.datasets.load_samples` knows them all.
"""

from edgeface.data import celeba, datasets

__all__ = ["celeba", "datasets"]
