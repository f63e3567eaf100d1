"""Hostile input is refused before any pixel is allocated, in few words, with no decoder chatter.

Peak memory is measured by the kernel for a fresh interpreter that decodes every hostile file in turn, so a
single allocation of the claimed size anywhere (100000 x 100000 x 3 bytes = 28 GiB) would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dng import write_dng
from hostile import hostile_files
from PIL import Image
from skimage import data

from deblurcli.errors import PhotoError
from deblurcli.io.decode import decode

_REFUSE_ALL = r"""
import json, resource, sys
from pathlib import Path
from deblurcli.errors import PhotoError
from deblurcli.io.decode import decode
results = {}
for path in sorted(Path(sys.argv[1]).iterdir()):
    try:
        decode(path)
        results[path.name] = "decoded"
    except PhotoError as err:
        results[path.name] = f"{type(err).__name__}: {err}"
print(json.dumps({"results": results, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((128, 128)))


def test_hostile_files_refused_under_1_gb(tmp_path: Path, rgb8: np.ndarray) -> None:
    write_dng(tmp_path / "shot.dng", rgb8)
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name, blob in hostile_files(rgb8, tmp_path / "shot.dng").items():
        (folder / name).write_bytes(blob)
    out = subprocess.run([sys.executable, "-c", _REFUSE_ALL, str(folder)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # LibRaw's "Unexpected end of file" and the like stay off the terminal
    report = json.loads(out.stdout)
    for name, outcome in report["results"].items():
        assert outcome != "decoded", name
        assert "\n" not in outcome and "b'" not in outcome and len(outcome) < 200, outcome
    assert "PhotoTooLargeError" in report["results"]["png_100k_square.png"]
    assert "tiles" in report["results"]["tiff_absurd_tiles.tif"]
    assert "past the end" in report["results"]["tiff_strips_past_eof.tif"]
    assert report["max_rss_kib"] < 1 << 20, f"peak RSS {report['max_rss_kib'] / 1024:.0f} MiB while refusing"


def test_truncated_raw_reason_is_plain_text(tmp_path: Path, rgb8: np.ndarray) -> None:
    write_dng(tmp_path / "shot.dng", rgb8)
    blob = (tmp_path / "shot.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(blob[: len(blob) - 1000])
    with pytest.raises(PhotoError) as err:
        decode(tmp_path / "cut.dng")
    assert "b'" not in str(err.value) and str(err.value).startswith("corrupt or truncated RAW")


def test_truncated_tiff_is_not_silently_zero_filled(tmp_path: Path, rgb8: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "x.tif", rgb8, photometric="rgb", metadata=None)
    blob = (tmp_path / "x.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(blob[: len(blob) * 3 // 4])
    with pytest.raises(PhotoError, match="truncated"):
        decode(tmp_path / "cut.tif")


def test_damaged_exif_warns_nobody(tmp_path: Path, rgb8: np.ndarray) -> None:
    """Pillow's "Tag data larger than file" warning would print two lines per file in a batch."""
    import warnings

    import tifffile
    from hostile import patch_tiff_tags

    tifffile.imwrite(tmp_path / "x.tif", rgb8, photometric="rgb", metadata=None, resolution=(300, 300))
    damaged = patch_tiff_tags((tmp_path / "x.tif").read_bytes(), {282: 1 << 30})  # XResolution far past EOF
    (tmp_path / "x.tif").write_bytes(damaged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        photo = decode(tmp_path / "x.tif")
    assert photo.pixels.shape == (128, 128, 3) and not caught
