"""The pyramid defocus map reads disc blur of known radius, narrow and wide, on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from deblurcli.engine.color import linear_to_srgb, srgb_to_linear
from deblurcli.methods import defocus_map
from deblurcli.methods.classic import disc_kernel


def _photo(name: str) -> torch.Tensor:
    """A scikit-image photo at half size (crisper than the scan itself), (1, 3, H, W) sRGB in [0, 1]."""
    from skimage import data

    img = np.asarray(Image.fromarray(getattr(data, name)()).reduce(2))
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255


def _blur8(srgb: torch.Tensor, radius: float) -> torch.Tensor:
    """Disc blur in linear light, back to 8-bit sRGB."""
    lin = srgb_to_linear(srgb)
    if radius:
        k = disc_kernel(radius)
        p = k.shape[-1] // 2
        lin = F.conv2d(F.pad(lin, (p, p, p, p), mode="reflect"), k.expand(3, 1, -1, -1), groups=3)
    return torch.round(linear_to_srgb(lin) * 255) / 255


def _textured(srgb: torch.Tensor) -> torch.Tensor:
    """Pixels near detail in the sharp photo: where a blur radius can be read at all."""
    luma = (srgb_to_linear(srgb) * torch.tensor(defocus_map._LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    gx, gy = defocus_map.gradients(defocus_map.gaussian(luma, 1.0))
    return defocus_map.gaussian(torch.sqrt(gx * gx + gy * gy), 4.0)[0, 0] > 0.004


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_reads_narrow_and_wide_disc_blur(name: str) -> None:
    sharp = _photo(name)
    where = _textured(sharp)[16:-16, 16:-16]
    readings = {}
    for radius in (0, 4, 8, 12):
        radius_map = defocus_map.estimate_defocus(_blur8(sharp, radius))
        assert radius_map.shape == (1, 1, *sharp.shape[-2:])
        readings[radius] = float(radius_map[0, 0, 16:-16, 16:-16][where].median())
    assert readings[0] < 1.5
    assert abs(readings[4] - 4) <= 0.2 * 4
    # the edge-only map of ``classic`` reads a 12 px disc as about 4 px; this one must not fall far short
    assert abs(readings[8] - 8) <= 0.15 * 8
    assert abs(readings[12] - 12) <= 0.15 * 12


def test_flat_photo_reads_no_blur() -> None:
    flat = torch.full((1, 3, 64, 96), 0.4)
    assert float(defocus_map.estimate_defocus(flat).abs().max()) == 0.0


def test_calibration_tables_fall_with_blur() -> None:
    """Each level's table must fall (weakly) over the range it is read in, or the inversion is ambiguous."""
    radii = defocus_map.CALIBRATION_RADII
    for level, top in enumerate(defocus_map.LEVEL_TOP):
        ratios = [q for r, q in zip(radii, defocus_map.CALIBRATION_RATIOS[level], strict=True) if r <= top]
        assert all(b <= a + 0.02 for a, b in zip(ratios, ratios[1:], strict=False)), level
    readings = [p[0] for p in defocus_map.READING_TO_RADIUS]
    assert readings == sorted(readings)


def test_clipped_highlight_does_not_read_sharp() -> None:
    """A light source far brighter than white, blurred by 4 px, clips to a plateau with a steep rim: that rim
    must not read as a sharp edge (it would make ``--bokeh keep`` sharpen a bokeh ball)."""
    h = w = 160
    yy, xx = np.mgrid[:h, :w]
    lin = np.full((h, w), 0.18, np.float32)
    lin += 0.05 * ((yy // 8 + xx // 8) % 2)  # a checker, so the blur can be read around the light
    lin[(yy - 80) ** 2 + (xx - 80) ** 2 < 20**2] = 8.0
    light = torch.from_numpy(lin)[None, None].expand(1, 3, h, w).contiguous()
    k = disc_kernel(4.0)
    p = k.shape[-1] // 2
    blurred = F.conv2d(F.pad(light, (p, p, p, p), mode="reflect"), k.expand(3, 1, -1, -1), groups=3)
    srgb = torch.round(linear_to_srgb(blurred) * 255) / 255
    distance = np.sqrt((yy - 80.0) ** 2 + (xx - 80.0) ** 2)
    rim = (distance > 20) & (distance < 30)
    radius_map = defocus_map.estimate_defocus(srgb)[0, 0].numpy()
    assert float(np.median(radius_map[rim])) >= 1.5  # 0.56 px before clipped pixels were kept from voting
