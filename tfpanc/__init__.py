"""tfpanc: Keras 3 reimplementations of four pancreas segmentation methods.

Layers (each imports only those above it): ``tfpanc.data`` -> ``tfpanc.models``
-> ``tfpanc.losses`` / ``tfpanc.metrics`` -> ``tfpanc.inference`` ->
``tfpanc.methods`` -> command-line front ends.
"""

__version__ = "0.1.0"
