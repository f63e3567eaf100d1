"""The training engine: one loop for every recipe, resumable bit for bit, single- or multi-process.

Pieces: ``loop`` (the loop), ``sampling`` and ``augment`` (a replayable data stream), ``checkpoint`` (the
training state), ``distributed`` (torchrun/DDP), ``validate`` (PSNR), ``runlog`` (CSV), ``export`` (our
safetensors plus a manifest record), ``datasets`` (``--data KIND:DIR`` specs), ``progress`` (rich, stderr).
Import the submodules directly; this package imports nothing heavy by itself.
"""

from __future__ import annotations
