"""The papers' own numbers, shown beside ours with ``--compare-published`` and always labelled as such.

Each row names the table it comes from (files in shared/papers). Papers compute LPIPS differently, so the
LPIPS column of one paper is not comparable with another's (research/field.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedRow:
    method: str
    dataset: str  # dpdd | realdof | ded
    psnr: float
    ssim: float
    lpips: float | None
    mae: float | None
    source: str


PUBLISHED: tuple[PublishedRow, ...] = (
    PublishedRow("input", "dpdd", 23.890, 0.725, 0.349, None, "DRBNet CVPR22 Table 2"),
    PublishedRow("ifan", "dpdd", 25.37, 0.789, 0.217, 0.0394, "IFAN CVPR21 Table 2"),
    PublishedRow("drbnet", "dpdd", 25.725, 0.791, 0.183, None, "DRBNet CVPR22 Table 2"),
    PublishedRow("kpac", "dpdd", 25.221, 0.774, 0.226, None, "DRBNet CVPR22 Table 2 (KPAC, authors' weights)"),
    PublishedRow("input", "realdof", 22.333, 0.633, 0.524, None, "DRBNet CVPR22 Table 2"),
    PublishedRow("ifan", "realdof", 24.71, 0.748, 0.306, 0.0407, "IFAN CVPR21 Table 3"),
    PublishedRow("drbnet", "realdof", 25.745, 0.771, 0.257, None, "DRBNet CVPR22 Table 2"),
    PublishedRow("kpac", "realdof", 23.984, 0.716, 0.336, None, "DRBNet CVPR22 Table 2 (KPAC, authors' weights)"),
    PublishedRow("dmsft", "ded", 26.5535, 0.8465, None, None, "Ye et al. 2022 Table 2 (DED 'Realistic')"),
)


def published_for(dataset: str) -> list[PublishedRow]:
    """Rows for a dataset kind (``dpdd``, ``realdof``, ``ded``); other kinds have none."""
    return [r for r in PUBLISHED if r.dataset == dataset]
