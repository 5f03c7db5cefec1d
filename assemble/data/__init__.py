"""Datasets for training: built-in toy points, scikit-learn digits, drawn shapes, and the user's folders.

    >>> from assemble.data import make_dataset, bind
    >>> ds = make_dataset("digits", size=16)
    >>> ds.fields["img"], len(ds)
    (FieldSpec(kind='image', shape=(1, 16, 16), n_classes=0), 1797)

Nothing is downloaded: the toy sets and shapes are generated, the digits ship inside scikit-learn, and a
folder path loads the user's images. ``bind`` maps a network's data-fed inputs to a dataset's fields.
"""

from .base import FIELD_KINDS, FieldSpec, GanDataset, IndexedImages
from .bind import DATA_KINDS, bind
from .make import list_datasets, make_dataset

__all__ = ["DATA_KINDS", "FIELD_KINDS", "FieldSpec", "GanDataset", "IndexedImages", "bind", "list_datasets",
           "make_dataset"]
