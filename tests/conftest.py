"""Fixtures several test modules share; a module that needs another size defines its own ``rgb8``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    """A real photo (the astronaut) at 128x96: small enough for every codec test, not square on purpose."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((128, 96)))


@pytest.fixture(scope="module")
def icc() -> bytes:
    """An sRGB ICC profile, as cameras and editors embed one."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
