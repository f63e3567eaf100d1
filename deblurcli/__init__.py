"""defocus: remove defocus blur from photographs.

Kept free of heavy imports so that ``defocus --version`` and ``--help`` answer without loading torch.
"""

__version__ = "0.1.0"
