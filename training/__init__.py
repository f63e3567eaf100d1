"""Training-side code for defocus: synthetic data, dataset readers and augmentations.

It lives beside ``deblurcli`` rather than inside it so that the inference CLI never pays for training
imports; ``training`` may import ``deblurcli``, never the other way round (the one exception is the
``defocus data`` command, which imports this package lazily inside its function).
"""

from __future__ import annotations
