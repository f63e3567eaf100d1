"""Random but physically consistent parameters of one synthetic sample.

Everything is drawn from a ``numpy.random.Generator`` so that a sample is a pure function of its seed, and
stored in frozen dataclasses so that the JSON sidecar records exactly what produced each image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SENSOR_WIDTH_MM = 36.0  # full-frame width; only used to report an equivalent frame width in pixels


@dataclass(frozen=True)
class LensParams:
    """Thin lens and virtual sensor: CoC in pixels follows from these alone (see ``psf.coc_px``)."""

    focal_mm: float
    f_number: float
    focus_m: float
    pixel_pitch_mm: float

    @property
    def frame_width_px(self) -> float:
        """Width of the full-frame sensor in output pixels, i.e. how large the virtual photo was."""
        return SENSOR_WIDTH_MM / self.pixel_pitch_mm


@dataclass(frozen=True)
class PsfParams:
    """Shape of the aperture image; ``frame_x/frame_y`` place the crop in the virtual frame ([-1, 1])."""

    edge_softness: float  # width of the soft edge as a fraction of the radius
    rim: float  # spherical aberration: >0 brightens the rim behind focus and the centre in front
    blades: int  # 0 = round aperture, else a regular polygon with this many blades
    blade_angle: float  # polygon rotation in radians
    cat_eye: float  # vignetting pupil offset, in radii, at the frame corner
    chroma_px: float  # lateral chromatic shift of R (and -B) in px at the frame corner
    frame_x: float
    frame_y: float
    dp_split_softness: float  # width of the dual-pixel split ramp, fraction of the radius


@dataclass(frozen=True)
class SensorParams:
    """Poisson-Gaussian noise in linear light, highlight recovery and optional JPEG of the blurred views."""

    shot: float  # variance per unit of linear signal (photon-transfer slope)
    read: float  # std of signal-independent noise, linear units
    highlight_gain: float  # linear values near 1 are stretched up to this factor before blurring
    jpeg_quality: int | None


@dataclass(frozen=True)
class SampleParams:
    """All parameters of one sample, as written to the JSON sidecar."""

    seed: int
    lens: LensParams
    psf: PsfParams
    sensor: SensorParams
    n_layers: int


def thin_lens_coc_mm(depth_m: np.ndarray, lens: LensParams) -> np.ndarray:
    """Signed CoC diameter on the sensor in mm: positive behind the focal plane, negative in front.

    Thin lens: c = A * f * (S - S1) / (S * (S1 - f)) with aperture diameter A = f / N; the sign is kept
    because the dual-pixel views and the spherical-aberration rim both flip across the focal plane.
    """
    f = lens.focal_mm
    s = np.asarray(depth_m, dtype=np.float64) * 1000.0
    s1 = lens.focus_m * 1000.0
    aperture = f / lens.f_number
    return aperture * f * (s - s1) / (s * (s1 - f))


def coc_px(depth_m: np.ndarray, lens: LensParams) -> np.ndarray:
    """Signed CoC diameter in output pixels."""
    return (thin_lens_coc_mm(depth_m, lens) / lens.pixel_pitch_mm).astype(np.float32)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_lens(rng: np.random.Generator, depth_m: np.ndarray, *, max_coc: float) -> LensParams:
    """Draw focal length, f-number and focus, then the pixel pitch that gives the wanted blur strength.

    The pitch is a free scale (how many pixels the virtual photo had), chosen so that the largest |CoC| in
    the crop lands in [0.5, max_coc] px; this keeps the blur distribution useful without breaking the
    thin-lens relation between pixels of the same sample. 15 % of samples are nearly all in focus, so that
    networks also learn to leave sharp content alone.
    """
    focal = _log_uniform(rng, 24.0, 135.0)
    f_number = float(rng.choice([1.4, 1.8, 2.0, 2.8, 4.0, 5.6]))
    near, far = float(depth_m.min()), float(depth_m.max())
    u = rng.uniform()
    if u < 0.6:  # focus on some surface in the scene (often the subject in front)
        focus = float(rng.choice(depth_m.ravel()))
    elif u < 0.8:  # focus behind everything: the whole scene is in front of the focal plane
        focus = far * rng.uniform(1.05, 2.0)
    else:
        focus = _log_uniform(rng, near * 0.7, far * 1.2)
    focus = max(focus, focal / 1000.0 * 5.0)
    probe = LensParams(focal_mm=focal, f_number=f_number, focus_m=focus, pixel_pitch_mm=1.0)
    peak_mm = float(np.abs(thin_lens_coc_mm(depth_m, probe)).max())
    target = rng.uniform(0.5, 2.5) if rng.uniform() < 0.15 else rng.uniform(2.5, max_coc)
    pitch = peak_mm / target if peak_mm > 0 else 0.006
    return LensParams(focal_mm=focal, f_number=f_number, focus_m=focus, pixel_pitch_mm=pitch)


def draw_psf(rng: np.random.Generator) -> PsfParams:
    """Lens character: most lenses round and clean, some with blades, rims, cat's eyes and colour fringes."""
    blades = 0 if rng.uniform() < 0.6 else int(rng.integers(5, 10))
    return PsfParams(
        edge_softness=float(rng.uniform(0.03, 0.2)),
        rim=float(rng.uniform(0.0, 0.6)) if rng.uniform() < 0.5 else 0.0,
        blades=blades,
        blade_angle=float(rng.uniform(0.0, 2.0 * math.pi)),
        cat_eye=float(rng.uniform(0.0, 0.7)) if rng.uniform() < 0.5 else 0.0,
        chroma_px=float(rng.uniform(-1.5, 1.5)) if rng.uniform() < 0.3 else 0.0,
        frame_x=float(rng.uniform(-1.0, 1.0)),
        frame_y=float(rng.uniform(-1.0, 1.0)),
        dp_split_softness=float(rng.uniform(0.05, 0.3)),
    )


def draw_sensor(rng: np.random.Generator, *, jpeg_prob: float) -> SensorParams:
    """Noise from clean base ISO to a noisy phone-like level; JPEG quality typical of cameras."""
    return SensorParams(
        shot=_log_uniform(rng, 1e-5, 4e-3),
        read=_log_uniform(rng, 1e-4, 4e-3),
        highlight_gain=float(rng.uniform(1.0, 4.0)) if rng.uniform() < 0.5 else 1.0,
        jpeg_quality=int(rng.integers(70, 96)) if rng.uniform() < jpeg_prob else None,
    )
