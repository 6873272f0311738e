"""Conversational dense retrieval (ConvDR) reproduced inside Pyserini, ir_datasets and ir_measures.

Importing the package registers its ir_datasets ids (`convdr/...`); nothing here starts Java or imports torch.
"""
__version__ = "0.1.0"

from . import datasets as _datasets  # noqa: E402  (registers the ir_datasets ids)

_datasets.register()
