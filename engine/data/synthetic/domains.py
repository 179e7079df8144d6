"""The two synthetic domains: colour palettes, camera network and per-camera looks.

A domain is plain data. Domain A is a sunny campus with six outdoor cameras; domain B an
overcast, partly indoor city scene with five cameras, darker clothes, stronger colour casts and
more crowding. Everything that differs between the domains lives here, so the people, timeline
and rendering modules stay generic.

Colours are BGR tuples (OpenCV order), 0-255. Camera positions are metres on a ground plane;
``look`` is the compass direction (degrees) a camera points at.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CameraSpec", "DomainSpec", "Palette", "DOMAINS", "get_domain"]

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    """Weighted colour choices for each kind of clothing item.

    Each entry is ``(name, bgr, weight)``; weights need not sum to one. Few, unevenly weighted
    garment colours make many people share their dominant colours, so identity has to be read
    from local details (patterns, logos, shoes, bags, hair).
    """

    upper: tuple[tuple[str, Color, float], ...]
    lower: tuple[tuple[str, Color, float], ...]
    accent: tuple[tuple[str, Color, float], ...]
    shoes: tuple[tuple[str, Color, float], ...]
    hair: tuple[tuple[str, Color, float], ...]
    skin: tuple[tuple[str, Color, float], ...]


@dataclass(frozen=True)
class CameraSpec:
    """Where a camera is and how its pictures look.

    Attributes
    ----------
    position : (float, float)
        Metres on the ground plane; transit times follow from distances.
    look : float
        Direction the camera points at, degrees; with a walker's heading it decides the
        viewpoint (front / back / side).
    background : str
        Background kind drawn by :mod:`engine.data.synthetic.render` (``tiles``, ``grass``,
        ``brick``, ``asphalt``, ``windows``, ``plaza``, ``shopfront``, ``corridor``).
    background_colors : tuple of BGR
        Base colours the background kind uses.
    gain : float
        Mean brightness multiplier.
    cast : (float, float, float)
        Per-channel (B, G, R) multipliers: the camera's colour cast.
    gamma : float
        Tone curve exponent applied after gain and cast.
    drift : float
        Relative amplitude of the slow brightness drift over the day.
    drift_period : float
        Period of that drift, seconds.
    blur : float
        Gaussian blur sigma, pixels of the 128x64 crop.
    noise : float
        Standard deviation of the additive sensor noise, 0-255 scale.
    jpeg_quality : (int, int)
        Inclusive range of JPEG qualities.
    low_res : float
        Probability that a crop comes from a far, low-resolution detection.
    occlusion : float
        Probability that an occluder covers part of the person.
    occluders : tuple of (str, float)
        Occluder kinds (``pole``, ``car``, ``bin``, ``bush``, ``pedestrian``) and weights.
    sessions : int
        Number of recording sessions (frame counters restart in each, as in Market-1501).
    """

    position: tuple[float, float]
    look: float
    background: str
    background_colors: tuple[Color, ...]
    gain: float
    cast: tuple[float, float, float]
    gamma: float
    drift: float
    drift_period: float
    blur: float
    noise: float
    jpeg_quality: tuple[int, int]
    low_res: float
    occlusion: float
    occluders: tuple[tuple[str, float], ...]
    sessions: int


@dataclass(frozen=True)
class DomainSpec:
    """Everything that makes one synthetic domain differ from the other.

    Attributes
    ----------
    name : str
        ``"A"`` or ``"B"``.
    code : int
        Number mixed into every random seed, so the two domains never share a stream.
    palette : Palette
        Clothing, hair and skin colours.
    cameras : tuple of CameraSpec
        Camera ``i`` is written as ``c{i+1}`` in file names.
    edges : tuple of (int, int)
        Walkable links between cameras (0-based); transit time = distance / walking speed.
    walking_speed : float
        Metres per second of an average walker.
    crowd_colors : tuple of BGR
        Colours for the cars, bins and poles used as occluders.
    """

    name: str
    code: int
    palette: Palette
    cameras: tuple[CameraSpec, ...]
    edges: tuple[tuple[int, int], ...]
    walking_speed: float
    crowd_colors: tuple[Color, ...]

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)


# Shared colour names, BGR.
_BLACK = (28, 28, 30)
_WHITE = (232, 234, 236)
_GREY = (128, 128, 128)
_CHARCOAL = (62, 62, 64)
_LIGHT_GREY = (175, 175, 172)
_NAVY = (92, 42, 22)
_RED = (40, 38, 196)
_BLUE = (196, 118, 40)
_GREEN = (60, 142, 58)
_BEIGE = (158, 196, 218)
_YELLOW = (40, 206, 228)
_PINK = (182, 132, 238)
_DENIM = (132, 84, 44)
_KHAKI = (112, 166, 188)
_BROWN = (42, 70, 112)
_ORANGE = (30, 124, 232)
_PURPLE = (128, 48, 104)
_BURGUNDY = (52, 30, 118)
_DARK_GREEN = (48, 84, 40)
_TEAL = (124, 122, 30)
_LIGHT_BLUE = (222, 184, 134)
_OLIVE = (58, 104, 92)
_DARK_DENIM = (98, 60, 30)

_SKIN = (
    ("light", (170, 196, 236), 0.3),
    ("fair", (140, 172, 222), 0.3),
    ("tan", (104, 140, 196), 0.2),
    ("brown", (70, 102, 150), 0.12),
    ("dark", (44, 64, 98), 0.08),
)

_PALETTE_A = Palette(
    upper=(
        ("black", _BLACK, 0.22), ("white", _WHITE, 0.14), ("grey", _GREY, 0.12),
        ("navy", _NAVY, 0.10), ("red", _RED, 0.09), ("blue", _BLUE, 0.08),
        ("green", _GREEN, 0.07), ("beige", _BEIGE, 0.07), ("yellow", _YELLOW, 0.05),
        ("pink", _PINK, 0.06),
    ),
    lower=(
        ("black", _BLACK, 0.32), ("denim", _DENIM, 0.28), ("grey", _GREY, 0.14),
        ("khaki", _KHAKI, 0.12), ("brown", _BROWN, 0.08), ("white", _WHITE, 0.06),
    ),
    accent=(
        ("black", _BLACK, 1.0), ("white", _WHITE, 1.0), ("red", _RED, 1.0),
        ("blue", _BLUE, 1.0), ("yellow", _YELLOW, 1.0), ("green", _GREEN, 1.0),
        ("orange", _ORANGE, 1.0), ("purple", _PURPLE, 1.0), ("pink", _PINK, 1.0),
        ("grey", _GREY, 1.0), ("navy", _NAVY, 1.0), ("brown", _BROWN, 1.0),
    ),
    shoes=(
        ("black", _BLACK, 0.35), ("white", _WHITE, 0.30), ("grey", _GREY, 0.10),
        ("brown", _BROWN, 0.12), ("red", _RED, 0.07), ("blue", _BLUE, 0.06),
    ),
    hair=(
        ("black", (22, 22, 26), 0.45), ("dark brown", (30, 42, 62), 0.30),
        ("brown", (44, 70, 104), 0.12), ("blonde", (96, 168, 206), 0.06),
        ("grey", (150, 150, 150), 0.04), ("auburn", (36, 56, 132), 0.03),
    ),
    skin=_SKIN,
)

_PALETTE_B = Palette(
    upper=(
        ("black", _BLACK, 0.28), ("charcoal", _CHARCOAL, 0.14), ("white", _WHITE, 0.10),
        ("burgundy", _BURGUNDY, 0.09), ("dark green", _DARK_GREEN, 0.08),
        ("khaki", _KHAKI, 0.08), ("purple", _PURPLE, 0.06), ("orange", _ORANGE, 0.06),
        ("teal", _TEAL, 0.06), ("light blue", _LIGHT_BLUE, 0.05),
    ),
    lower=(
        ("black", _BLACK, 0.36), ("dark denim", _DARK_DENIM, 0.22),
        ("charcoal", _CHARCOAL, 0.18), ("olive", _OLIVE, 0.10),
        ("light grey", _LIGHT_GREY, 0.08), ("burgundy", _BURGUNDY, 0.06),
    ),
    accent=(
        ("black", _BLACK, 1.0), ("white", _WHITE, 1.0), ("red", _RED, 1.0),
        ("yellow", _YELLOW, 1.0), ("teal", _TEAL, 1.0), ("orange", _ORANGE, 1.0),
        ("light blue", _LIGHT_BLUE, 1.0), ("khaki", _KHAKI, 1.0), ("grey", _GREY, 1.0),
        ("burgundy", _BURGUNDY, 1.0), ("pink", _PINK, 1.0),
    ),
    shoes=(
        ("black", _BLACK, 0.45), ("white", _WHITE, 0.18), ("brown", _BROWN, 0.17),
        ("grey", _GREY, 0.10), ("khaki", _KHAKI, 0.05), ("orange", _ORANGE, 0.05),
    ),
    hair=(
        ("black", (22, 22, 26), 0.40), ("dark brown", (30, 42, 62), 0.28),
        ("brown", (44, 70, 104), 0.14), ("blonde", (96, 168, 206), 0.10),
        ("grey", (150, 150, 150), 0.05), ("auburn", (36, 56, 132), 0.03),
    ),
    skin=_SKIN,
)

_OUTDOOR_OCCLUDERS = (("pole", 1.0), ("car", 1.0), ("bin", 0.6), ("bush", 0.6),
                      ("pedestrian", 1.4))
_STREET_OCCLUDERS = (("pole", 1.2), ("car", 1.6), ("bin", 0.5), ("pedestrian", 1.2))
_INDOOR_OCCLUDERS = (("pole", 0.8), ("bin", 0.8), ("pedestrian", 2.4))


def _camera(position, look, background, colors, gain, cast, gamma, blur, noise, quality,
            low_res, occlusion, occluders, sessions, drift=0.12, drift_period=5400.0):
    return CameraSpec(position=position, look=look, background=background,
                      background_colors=colors, gain=gain, cast=cast, gamma=gamma,
                      drift=drift, drift_period=drift_period, blur=blur, noise=noise,
                      jpeg_quality=quality, low_res=low_res, occlusion=occlusion,
                      occluders=occluders, sessions=sessions)


DOMAIN_A = DomainSpec(
    name="A",
    code=101,
    palette=_PALETTE_A,
    cameras=(
        _camera((0, 0), 20, "tiles", ((150, 150, 146), (120, 120, 118)), 1.04,
                (1.0, 1.0, 1.0), 1.0, 0.6, 3.5, (80, 95), 0.08, 0.30, _OUTDOOR_OCCLUDERS, 2),
        _camera((60, 15), 170, "grass", ((60, 130, 70), (150, 180, 190)), 1.08,
                (0.96, 1.0, 1.05), 0.96, 0.7, 4.0, (75, 92), 0.10, 0.28, _OUTDOOR_OCCLUDERS, 3),
        _camera((120, 0), 260, "brick", ((70, 90, 150), (160, 160, 150)), 0.95,
                (0.95, 0.99, 1.06), 1.04, 0.8, 4.5, (75, 92), 0.12, 0.32, _STREET_OCCLUDERS, 2),
        _camera((150, 75), 300, "asphalt", ((80, 80, 84), (200, 200, 200)), 1.0,
                (1.05, 1.0, 0.95), 1.0, 0.9, 5.0, (70, 90), 0.12, 0.34, _STREET_OCCLUDERS, 3),
        _camera((45, 90), 90, "windows", ((150, 140, 130), (90, 70, 50)), 0.93,
                (1.05, 1.01, 0.95), 1.05, 0.6, 4.0, (78, 95), 0.08, 0.28, _OUTDOOR_OCCLUDERS, 2),
        _camera((105, 120), 200, "plaza", ((150, 180, 200), (50, 100, 60)), 1.1,
                (0.97, 1.01, 1.03), 0.95, 1.0, 5.0, (70, 90), 0.14, 0.32, _OUTDOOR_OCCLUDERS, 3),
    ),
    edges=((0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (3, 5), (0, 4), (2, 5)),
    walking_speed=1.3,
    crowd_colors=((90, 90, 90), (40, 40, 160), (160, 90, 40), (200, 200, 200), (40, 40, 40),
                  (60, 110, 60)),
)

DOMAIN_B = DomainSpec(
    name="B",
    code=202,
    palette=_PALETTE_B,
    cameras=(
        _camera((0, 0), 45, "corridor", ((180, 190, 185), (110, 120, 118)), 0.95,
                (0.96, 1.05, 0.97), 1.04, 0.9, 6.0, (70, 90), 0.15, 0.34, _INDOOR_OCCLUDERS, 2),
        _camera((50, 30), 210, "shopfront", ((60, 60, 70), (40, 160, 220)), 1.06,
                (0.93, 0.98, 1.09), 0.96, 1.0, 7.0, (65, 88), 0.18, 0.35, _INDOOR_OCCLUDERS, 3),
        _camera((110, 20), 120, "asphalt", ((55, 55, 60), (180, 200, 210)), 0.86,
                (0.95, 0.99, 1.06), 1.08, 1.2, 8.0, (60, 85), 0.2, 0.30, _STREET_OCCLUDERS, 2),
        _camera((90, 95), 330, "tiles", ((175, 170, 160), (120, 115, 110)), 1.1,
                (1.07, 1.01, 0.94), 0.94, 0.8, 6.0, (70, 92), 0.15, 0.30, _INDOOR_OCCLUDERS, 3),
        _camera((20, 80), 250, "windows", ((90, 85, 80), (160, 120, 70)), 0.9,
                (1.0, 1.0, 1.0), 1.06, 1.1, 7.5, (62, 88), 0.2, 0.33, _OUTDOOR_OCCLUDERS, 2),
    ),
    edges=((0, 1), (1, 2), (2, 3), (3, 4), (0, 4), (1, 3), (0, 3)),
    walking_speed=1.2,
    crowd_colors=((70, 70, 70), (30, 30, 120), (120, 70, 30), (170, 170, 170), (25, 25, 25),
                  (30, 90, 130)),
)

DOMAINS: dict[str, DomainSpec] = {"A": DOMAIN_A, "B": DOMAIN_B}


def get_domain(name: str) -> DomainSpec:
    """The :class:`DomainSpec` called ``name`` (``"A"`` or ``"B"``, case-insensitive)."""
    key = str(name).upper()
    if key not in DOMAINS:
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {name!r}")
    return DOMAINS[key]
