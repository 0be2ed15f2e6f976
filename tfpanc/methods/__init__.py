"""tfpanc.methods: one package per paper, registered by name in :mod:`tfpanc.methods.registry`.

Importing this package registers the built-in methods (``cai``, ``zhou``, ``two_stage``,
``multitask``).
Each package's ``__init__`` imports only its config, so registering costs
no Keras import.
"""

from tfpanc.methods import cai, multitask, two_stage, zhou  # noqa: F401  (registers them)
from tfpanc.methods.registry import Method, get, names, register

__all__ = ["Method", "get", "names", "register"]
