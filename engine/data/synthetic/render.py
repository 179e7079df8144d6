"""Rendering one synthetic crop: background, person, occluder, then the camera's degradations.

Drawing happens on a 256x128 canvas (twice the output size) and is area-downsampled to the
native 128x64 Market crop, which anti-aliases the polygon edges for free. Each camera owns a
larger background texture (its scene: tiles, grass, brick, street, shop fronts...) from which
every crop takes a random window, so backgrounds are consistent within a camera and differ
across cameras. The camera's look (gain with a slow drift over the day, colour cast, gamma,
blur, noise, JPEG quality, occasional low resolution) is applied to the small crop.

All randomness comes from the generators passed in, so a crop is a pure function of its
:class:`ImageSpec`, its person, the camera and the seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.data.synthetic.domains import CameraSpec, DomainSpec
from engine.data.synthetic.people import VIEWS, Person, draw_person, sample_person

__all__ = [
    "OUT_H", "OUT_W", "ImageSpec", "make_background", "make_noise_bank", "sample_image_spec",
    "render_crop",
    "encode_jpeg",
]

OUT_H, OUT_W = 128, 64
_CH, _CW = 2 * OUT_H, 2 * OUT_W  # drawing canvas
_BG_H, _BG_W = 320, 1024  # per-camera background texture
_BG_SATURATION = 0.4  # share of the scene colours' saturation kept
_BG_MAX_STD = 32.0  # largest brightness spread of a scene, 0-255 scale

TRUNCATIONS = ("none", "feet", "head", "side", "loose")
OCCLUDERS = ("none", "pole", "car", "bin", "bush", "pedestrian")
JUNK_KINDS = ("background", "fragment", "smear")


@dataclass
class ImageSpec:
    """The nuisance settings of one crop, drawn before rendering (and kept as metadata).

    Geometry is in canvas pixels of the 256x128 drawing canvas; ``body_*`` describe the
    person's head-to-sole box before the crop cuts it.
    """

    view: str
    phase: float
    body_cx: float
    body_top: float
    body_height: float
    truncation: str
    occluder: str
    gain: float
    cast: tuple[float, float, float]
    gamma: float
    light_gradient: tuple[float, float]
    blur: float
    motion_blur: bool
    low_res: float
    noise: float
    quality: int
    junk: str = ""


def _noise_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random field [h, w] float32 with features about ``cell`` pixels wide, std ~1."""
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _scale(color, k: float) -> tuple[int, int, int]:
    c = np.clip(np.asarray(color, dtype=np.float64) * k, 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _draw_clutter(img: np.ndarray, rng: np.random.Generator, ground: int, colors) -> None:
    """Benches, bins, signs and bicycles along the ground line of a background texture."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(4, 9))):
        kind = int(rng.integers(4))
        x = int(rng.integers(0, w))
        base = int(rng.integers(ground, h))
        col = colors[int(rng.integers(len(colors)))]
        if kind == 0:  # bench
            bw = int(rng.integers(50, 90))
            cv2.rectangle(img, (x, base - 30), (x + bw, base - 22), col, -1)
            cv2.rectangle(img, (x, base - 48), (x + bw, base - 40), col, -1)
            cv2.rectangle(img, (x + 4, base - 22), (x + 9, base), _scale(col, 0.6), -1)
            cv2.rectangle(img, (x + bw - 9, base - 22), (x + bw - 4, base), _scale(col, 0.6), -1)
        elif kind == 1:  # bin or planter
            cv2.rectangle(img, (x, base - 50), (x + 30, base), col, -1)
            cv2.rectangle(img, (x - 2, base - 54), (x + 32, base - 47), _scale(col, 0.7), -1)
        elif kind == 2:  # sign on a pole
            cv2.rectangle(img, (x, base - 150), (x + 5, base), (90, 90, 90), -1)
            sign = tuple(int(v) for v in rng.integers(30, 240, 3))
            cv2.rectangle(img, (x - 20, base - 170), (x + 25, base - 135), sign, -1)
        else:  # bicycle
            dark = (35, 35, 35)
            cv2.circle(img, (x, base - 20), 18, dark, 3)
            cv2.circle(img, (x + 52, base - 20), 18, dark, 3)
            cv2.line(img, (x, base - 20), (x + 26, base - 45), col, 4)
            cv2.line(img, (x + 26, base - 45), (x + 52, base - 20), col, 4)


def _draw_scene(kind: str, colors, rng: np.random.Generator, w: int) -> np.ndarray:
    """One stretch [320, w, 3] uint8 of scene of the given kind, in base colours ``colors``."""
    h = _BG_H
    c0, c1 = colors
    img = np.empty((h, w, 3), np.uint8)
    img[:] = c0
    ground = int(h * 0.55)
    if kind == "tiles":
        step = int(rng.integers(26, 40))
        for y in range(int(rng.integers(step)), h, step):
            cv2.line(img, (0, y), (w, y), c1, 2)
        for x in range(int(rng.integers(step)), w, step):
            cv2.line(img, (x, 0), (x, h), c1, 2)
        for _ in range(40):
            x, y = int(rng.integers(w)), int(rng.integers(h))
            cv2.rectangle(img, (x, y), (x + step - 4, y + step - 4), _scale(c0, rng.uniform(0.85, 1.1)), -1)
        ground = int(h * 0.3)
    elif kind == "grass":
        img[: int(h * 0.4)] = _scale(c0, 0.55)
        for _ in range(30):
            cv2.circle(img, (int(rng.integers(w)), int(rng.integers(0, int(h * 0.42)))),
                       int(rng.integers(15, 45)), _scale(c0, rng.uniform(0.4, 0.8)), -1)
        pts = np.array([[0, int(h * 0.62)], [w, int(h * 0.5)], [w, int(h * 0.85)],
                        [0, int(h * 0.98)]], np.int32)
        cv2.fillConvexPoly(img, pts, c1)
        ground = int(h * 0.45)
    elif kind == "brick":
        wall = int(h * 0.68)
        img[wall:] = c1
        bh, bw = 14, 32
        for r, y in enumerate(range(0, wall, bh)):
            off = (r % 2) * bw // 2
            cv2.line(img, (0, y), (w, y), _scale(c1, 0.8), 2)
            for x in range(-off, w, bw):
                cv2.line(img, (x, y), (x, min(y + bh, wall)), _scale(c1, 0.8), 2)
        for x in range(0, w, 40):
            cv2.line(img, (x, wall), (x - 30, h), _scale(c1, 0.85), 2)
        ground = wall
    elif kind == "asphalt":
        facade = int(h * 0.35)
        img[:facade] = (150, 150, 146)
        for x in range(10, w, 60):
            cv2.rectangle(img, (x, 20), (x + 36, facade - 20), (90, 80, 70), -1)
        cv2.rectangle(img, (0, facade), (w, facade + 12), (170, 170, 170), -1)
        for x in range(int(rng.integers(80)), w, 110):
            cv2.rectangle(img, (x, int(h * 0.75)), (x + 60, int(h * 0.75) + 8), c1, -1)
        ground = facade + 12
    elif kind == "windows":
        floor = int(h * 0.75)
        img[floor:] = _scale(c0, 0.7)
        for y in range(10, floor - 40, 70):
            for x in range(int(rng.integers(20)), w, 56):
                cv2.rectangle(img, (x, y), (x + 44, y + 58), c1, -1)
                cv2.line(img, (x + 8, y + 50), (x + 30, y + 8), _scale(c1, 1.5), 2)
                cv2.rectangle(img, (x, y), (x + 44, y + 58), _scale(c0, 0.6), 2)
        ground = floor
    elif kind == "plaza":
        for _ in range(8):
            x = int(rng.integers(w))
            cv2.rectangle(img, (x, 40), (x + 10, int(h * 0.55)), (40, 60, 90), -1)
            cv2.circle(img, (x + 5, 40), int(rng.integers(30, 55)), _scale(c1, rng.uniform(0.7, 1.2)), -1)
        ground = int(h * 0.55)
    elif kind == "shopfront":
        floor = int(h * 0.7)
        x = 0
        while x < w:
            pw = int(rng.integers(70, 140))
            panel = tuple(int(v) for v in rng.integers(40, 200, 3))
            cv2.rectangle(img, (x, 0), (x + pw, floor), panel, -1)
            cv2.rectangle(img, (x + 6, 10), (x + pw - 6, 40), c1, -1)
            cv2.rectangle(img, (x + 10, 60), (x + pw - 10, floor - 20), (50, 45, 40), -1)
            for _ in range(4):
                ix, iy = int(rng.integers(x + 12, x + pw - 20)), int(rng.integers(70, floor - 40))
                cv2.rectangle(img, (ix, iy), (ix + 14, iy + 20),
                              tuple(int(v) for v in rng.integers(30, 255, 3)), -1)
            x += pw
        img[floor:] = c0
        ground = floor
    elif kind == "corridor":
        floor = int(h * 0.72)
        for x in range(0, w, 48):
            cv2.line(img, (x, 0), (x, floor), _scale(c0, 0.85), 2)
        for _ in range(3):
            x = int(rng.integers(w - 60))
            cv2.rectangle(img, (x, int(h * 0.2)), (x + 55, floor), c1, -1)
        img[floor:] = _scale(c1, 0.9)
        for y in range(floor, h, 18):
            cv2.line(img, (0, y), (w, y), _scale(c1, 0.75), 1)
        ground = floor
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    _draw_clutter(img, rng, ground, ((40, 70, 110), (70, 70, 70), (40, 110, 50), (150, 150, 150)))
    return img


def make_background(domain: DomainSpec, cam: int, rng: np.random.Generator) -> np.ndarray:
    """Camera ``cam``'s scene texture [320, 1024, 3] uint8 (BGR), drawn from ``rng``.

    The scene is a row of stretches: half of them of the camera's own kind, the others of
    kinds seen by the domain's other cameras (in their colours), so crops of one camera vary
    and different cameras share some scenery, as street cameras do.
    """
    camera = domain.cameras[cam]
    others = [c for c in domain.cameras if c.background != camera.background]
    parts, width = [], 0
    while width < _BG_W:
        w = int(rng.integers(200, 360))
        if rng.random() < 0.5 or not others:
            kind, colors = camera.background, camera.background_colors
        else:
            other = others[int(rng.integers(len(others)))]
            kind, colors = other.background, other.background_colors
        parts.append(_draw_scene(kind, colors, rng, w))
        width += w
    img = np.concatenate(parts, axis=1)[:, :_BG_W]
    h, w = img.shape[:2]
    tex = img.astype(np.float32) + 10.0 * _noise_field(rng, h, w, 6)[..., None]
    tex += 5.0 * rng.standard_normal((h, w, 1)).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), 1.0)
    # Scenes are kept muted (as pavements, walls and floors mostly are): saturated
    # backgrounds would make every crop's colour statistics a signature of its camera.
    gray = tex.mean(axis=2, keepdims=True)
    tex = gray + _BG_SATURATION * (tex - gray)
    # Likewise their brightness and contrast stay within a common range.
    mean, std = float(tex.mean()), float(tex.std())
    target = float(np.clip(mean, 105.0, 150.0))
    tex = target + (tex - mean) * min(1.0, _BG_MAX_STD / max(std, 1e-6))
    return np.clip(tex, 0, 255).astype(np.uint8)


def _perturb_view(view: str, rng: np.random.Generator, p: float) -> str:
    """Walkers turn now and then: with probability ``p`` move to a neighbouring viewpoint."""
    if rng.random() >= p:
        return view
    if view in ("front", "back"):
        return "left" if rng.random() < 0.5 else "right"
    return "front" if rng.random() < 0.5 else "back"


def sample_image_spec(rng: np.random.Generator, camera: CameraSpec, camera_phase: float,
                      view: str, time: float, junk: str = "") -> ImageSpec:
    """Draw the nuisance settings of one crop.

    Parameters
    ----------
    rng : numpy Generator
        The crop's own generator (seeded from the dataset seed, domain and image index).
    camera : CameraSpec
        Camera that took the crop.
    camera_phase : float
        Phase of the camera's daylight drift, radians.
    view : str
        Viewpoint the walker's heading implies; perturbed now and then.
    time : float
        Capture time, seconds, for the brightness drift.
    junk : str
        ``""`` for a normal detection, else one of ``background``, ``fragment``, ``smear``.
    """
    view = _perturb_view(view, rng, 0.15)
    r = rng.random()
    truncation = ("feet" if r < 0.11 else "head" if r < 0.16 else "side" if r < 0.21
                  else "loose" if r < 0.26 else "none")
    height = _CH * rng.uniform(0.86, 0.97)
    bottom = _CH - _CH * rng.uniform(0.0, 0.04)
    cx = _CW / 2 + _CW * rng.uniform(-0.07, 0.07)
    if truncation == "feet":
        bottom = _CH + height * rng.uniform(0.12, 0.3)
    elif truncation == "head":
        bottom = height * (1.0 - rng.uniform(0.06, 0.16))
    elif truncation == "side":
        cx = _CW / 2 + _CW * rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.32)
    elif truncation == "loose":
        height = _CH * rng.uniform(0.66, 0.8)
        bottom = _CH - _CH * rng.uniform(0.02, 0.18)
    occluder = "none"
    if rng.random() < camera.occlusion:
        kinds = [k for k, _ in camera.occluders]
        w = np.array([v for _, v in camera.occluders], dtype=np.float64)
        occluder = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    drift = 1.0 + camera.drift * np.sin(2 * np.pi * time / camera.drift_period + camera_phase)
    q0, q1 = camera.jpeg_quality
    spec = ImageSpec(
        view=view,
        phase=float(rng.uniform(0, 2 * np.pi)),
        body_cx=float(cx),
        body_top=float(bottom - height),
        body_height=float(height),
        truncation=truncation,
        occluder=occluder,
        gain=float(camera.gain * drift * rng.uniform(0.9, 1.1)),
        cast=tuple(float(c * rng.uniform(0.96, 1.04)) for c in camera.cast),
        gamma=float(camera.gamma * rng.uniform(0.95, 1.05)),
        light_gradient=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.25, 0.25))),
        blur=float(camera.blur * rng.uniform(0.6, 1.4)),
        motion_blur=bool(rng.random() < 0.08),
        low_res=float(rng.uniform(0.3, 0.55)) if rng.random() < camera.low_res else 0.0,
        noise=float(camera.noise * rng.uniform(0.7, 1.3)),
        quality=int(rng.integers(q0, q1 + 1)),
        junk=junk,
    )
    if junk:
        spec.truncation, spec.occluder = "none", "none"
        if junk == "background":
            # Only a sliver of someone at the crop's edge, if anyone.
            spec.body_cx = float(rng.choice([-1.0, 1.0]) * _CW * rng.uniform(0.55, 0.8) + _CW / 2)
        elif junk == "fragment":
            # A box on a body part: legs or torso blown up to the whole crop.
            spec.body_height = float(_CH * rng.uniform(2.0, 3.2))
            spec.body_top = float(-spec.body_height * rng.uniform(0.2, 0.6))
        else:
            spec.low_res = float(rng.uniform(0.12, 0.2))
            spec.blur = float(rng.uniform(2.0, 3.5))
    return spec


def _shadow(canvas: np.ndarray, cx: float, y: float, half_w: float) -> None:
    """Darken an ellipse under the feet (a soft contact shadow)."""
    x0, x1 = int(max(0, cx - half_w)), int(min(_CW, cx + half_w))
    y0, y1 = int(max(0, y - 6)), int(min(_CH, y + 6))
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = ((xx - cx) / half_w) ** 2 + ((yy - y) / 6.0) ** 2 <= 1.0
    roi = canvas[y0:y1, x0:x1]
    roi[inside] = (roi[inside] * 0.62).astype(np.uint8)


def _draw_occluder(canvas: np.ndarray, kind: str, rng: np.random.Generator, domain: DomainSpec,
                   spec: ImageSpec) -> tuple[float, float, float, float]:
    """Paint an occluder in front of the person; return its box (x0, y0, x1, y1), canvas px."""
    colors = domain.crowd_colors
    col = colors[int(rng.integers(len(colors)))]
    if kind == "pole":
        pw = _CW * rng.uniform(0.08, 0.16)
        x = spec.body_cx + _CW * rng.uniform(-0.3, 0.3) - pw / 2
        cv2.rectangle(canvas, (int(x), 0), (int(x + pw), _CH), col, -1)
        cv2.rectangle(canvas, (int(x + pw * 0.2), 0), (int(x + pw * 0.35), _CH), _scale(col, 1.3), -1)
        return (x, 0.0, x + pw, float(_CH))
    if kind == "car":
        y = _CH * rng.uniform(0.5, 0.72)
        if rng.random() < 0.5:
            x0, x1 = 0.0, float(_CW)
        else:
            reach = _CW * rng.uniform(0.55, 0.9)
            x0, x1 = (0.0, reach) if rng.random() < 0.5 else (_CW - reach, float(_CW))
        cv2.rectangle(canvas, (int(x0), int(y)), (int(x1), _CH), col, -1)
        cv2.rectangle(canvas, (int(x0), int(y)), (int(x1), int(y + 0.12 * _CH)), _scale(col, 0.45), -1)
        cv2.line(canvas, (int(x0), int(y + 0.2 * _CH)), (int(x1), int(y + 0.2 * _CH)), _scale(col, 1.4), 3)
        cv2.circle(canvas, (int((x0 + x1) / 2), _CH + 6), 26, (25, 25, 25), -1)
        return (x0, y, x1, float(_CH))
    if kind == "bin":
        bw = _CW * rng.uniform(0.35, 0.6)
        y = _CH * rng.uniform(0.55, 0.75)
        x0 = 0.0 if rng.random() < 0.5 else _CW - bw
        cv2.rectangle(canvas, (int(x0), int(y)), (int(x0 + bw), _CH), col, -1)
        cv2.rectangle(canvas, (int(x0) - 2, int(y)), (int(x0 + bw) + 2, int(y + 10)), _scale(col, 0.6), -1)
        return (x0, y, x0 + bw, float(_CH))
    if kind == "bush":
        y = _CH * rng.uniform(0.62, 0.8)
        green = (int(rng.integers(30, 60)), int(rng.integers(90, 140)), int(rng.integers(30, 70)))
        for _ in range(6):
            cx = int(rng.uniform(0, _CW))
            cy = int(rng.uniform(y + 15, _CH))
            cv2.circle(canvas, (cx, cy), int(rng.uniform(20, 38)), _scale(green, rng.uniform(0.7, 1.2)), -1)
        cv2.rectangle(canvas, (0, int(y + 25)), (_CW, _CH), green, -1)
        return (0.0, y, float(_CW), float(_CH))
    if kind == "pedestrian":
        other = sample_person(rng, domain.palette)
        h = spec.body_height * rng.uniform(0.95, 1.12)
        cx = spec.body_cx + rng.choice([-1.0, 1.0]) * _CW * rng.uniform(0.42, 0.7)
        bottom = min(_CH * 1.02, spec.body_top + spec.body_height + _CH * rng.uniform(0.0, 0.08))
        draw_person(canvas, other, domain.palette, VIEWS[int(rng.integers(4))],
                    float(rng.uniform(0, 2 * np.pi)), cx, bottom - h, h, rng)
        half = 0.16 * h
        return (cx - half, bottom - h, cx + half, bottom)
    raise ValueError(f"unknown occluder kind {kind!r}")


def make_noise_bank(rng: np.random.Generator, size: int = 1 << 20) -> np.ndarray:
    """A 1-D float32 bank of standard normals that :func:`render_crop` slices its noise from."""
    return rng.standard_normal(size, dtype=np.float32)


def render_crop(spec: ImageSpec, person: Person, domain: DomainSpec, background: np.ndarray,
                noise_bank: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Draw one crop.

    Parameters
    ----------
    spec : ImageSpec
        Nuisance settings from :func:`sample_image_spec`.
    person : Person
        Who is in the crop.
    domain : DomainSpec
        Palette and occluder colours.
    background : ndarray [320, 1024, 3] uint8
        The camera's scene texture (:func:`make_background`).
    noise_bank : ndarray [n] float32
        Standard normals (:func:`make_noise_bank`), n well above 128*64*3.
    rng : numpy Generator
        The crop's rendering generator.

    Returns
    -------
    image : ndarray [128, 64, 3] uint8
        The BGR crop.
    info : dict
        ``body_box`` and ``occluder_box`` (x0, y0, x1, y1 in output pixels, occluder box
        ``None`` when unoccluded) and ``occluded`` (share of the in-crop body box covered).
    """
    oy = int(rng.integers(0, _BG_H - _CH + 1))
    ox = int(rng.integers(0, _BG_W - _CW + 1))
    canvas = background[oy:oy + _CH, ox:ox + _CW].copy()
    if rng.random() < 0.5:
        canvas = cv2.flip(canvas, 1)
    # Sun and shade: the same scene is lit differently from crop to crop.
    canvas = cv2.convertScaleAbs(canvas, alpha=float(rng.uniform(0.8, 1.15)))
    if rng.random() < 0.25:
        # Someone further away behind the person: clutter, and a confuser for crude matchers.
        far = sample_person(rng, domain.palette)
        h = spec.body_height * rng.uniform(0.45, 0.65)
        cx = float(rng.uniform(0, _CW))
        draw_person(canvas, far, domain.palette, VIEWS[int(rng.integers(4))],
                    float(rng.uniform(0, 2 * np.pi)), cx, _CH * 0.62 - h, h, rng)
    bottom = spec.body_top + spec.body_height
    _shadow(canvas, spec.body_cx, bottom, 0.14 * spec.body_height)
    draw_person(canvas, person, domain.palette, spec.view, spec.phase, spec.body_cx,
                spec.body_top, spec.body_height, rng)
    occ_box = None
    if spec.occluder != "none":
        occ_box = _draw_occluder(canvas, spec.occluder, rng, domain, spec)

    img = cv2.resize(canvas, (OUT_W, OUT_H), interpolation=cv2.INTER_AREA).astype(np.float32)
    gx, gy = spec.light_gradient
    ramp_x = 1.0 + gx * (np.arange(OUT_W, dtype=np.float32) / OUT_W - 0.5)
    ramp_y = 1.0 + gy * (np.arange(OUT_H, dtype=np.float32) / OUT_H - 0.5)
    light = ramp_y[:, None, None] * ramp_x[None, :, None] * (
        spec.gain * np.asarray(spec.cast, dtype=np.float32))  # [H, W, 3]
    img = np.clip(img * light + 0.5, 0.0, 255.0).astype(np.uint8)
    if abs(spec.gamma - 1.0) > 1e-3:
        # A lookup table: far cheaper than a per-pixel power on the crop.
        lut = 255.0 * np.power(np.arange(256) / 255.0, spec.gamma)
        img = cv2.LUT(img, np.clip(lut + 0.5, 0, 255).astype(np.uint8))
    img = img.astype(np.float32)
    if spec.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), spec.blur)
    if spec.motion_blur:
        k = np.full((1, 5), 1.0 / 5, np.float32)
        img = cv2.filter2D(img, -1, k)
    if spec.low_res > 0:
        small = (max(4, int(OUT_W * spec.low_res)), max(8, int(OUT_H * spec.low_res)))
        img = cv2.resize(cv2.resize(img, small, interpolation=cv2.INTER_AREA), (OUT_W, OUT_H),
                         interpolation=cv2.INTER_LINEAR)
    # Sensor noise from a shared bank of normals at a random offset: drawing 24k fresh
    # normals per crop would cost more than all the drawing.
    start = int(rng.integers(0, noise_bank.size - img.size))
    img += spec.noise * noise_bank[start:start + img.size].reshape(img.shape)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    k = OUT_H / _CH
    half_w = 0.16 * spec.body_height
    body = (spec.body_cx - half_w, spec.body_top, spec.body_cx + half_w, bottom)
    info = {"body_box": tuple(round(v * k, 1) for v in body), "occluder_box": None,
            "occluded": 0.0}
    if occ_box is not None:
        info["occluder_box"] = tuple(round(v * k, 1) for v in occ_box)
        cx0, cy0 = max(body[0], 0.0), max(body[1], 0.0)
        cx1, cy1 = min(body[2], float(_CW)), min(body[3], float(_CH))
        area = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0)
        ix = max(0.0, min(cx1, occ_box[2]) - max(cx0, occ_box[0]))
        iy = max(0.0, min(cy1, occ_box[3]) - max(cy0, occ_box[1]))
        info["occluded"] = round(ix * iy / area, 3) if area > 0 else 0.0
    return out, info


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR uint8 image (libjpeg via OpenCV: deterministic for equal input)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return buf.tobytes()
