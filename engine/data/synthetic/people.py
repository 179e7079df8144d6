"""Procedural pedestrians: an identity's attributes and drawing them onto a crop.

A :class:`Person` is a bundle of small integer codes (palette indices, pattern and bag kinds)
plus two body proportions. :func:`draw_person` paints one person on a BGR canvas with a few
dozen OpenCV polygon fills, for one viewpoint and walking phase. Which details are visible
depends on the viewpoint: the chest logo and an open jacket only from the front, a backpack's
body and a back print only from behind, trouser side stripes mostly from the side.

Geometry is written in body units: ``u`` across and ``v`` down, both as fractions of the
body height (``u`` then stretched by ``_ASPECT``), with ``v = 0`` at the top of the head and
``v = 1`` at the soles.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from engine.data.synthetic.domains import Palette

__all__ = ["VIEWS", "Person", "sample_person", "draw_person", "person_to_dict"]

VIEWS = ("front", "back", "left", "right")

PATTERNS = ("plain", "stripes", "two-tone", "checks")
LOGOS = ("none", "circle", "square", "triangle", "cross", "bars")
BACK_PRINTS = ("none", "disc", "block", "band")
LOWER_TYPES = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "shoulder bag", "handbag")
HATS = ("none", "cap", "beanie")

# Horizontal stretch of the body drawing: detector crops are resized to 128x64 whatever the
# box's own aspect, which makes people look broader than life; it also keeps the person, not
# the scene, the larger share of the crop.
_ASPECT = 1.22


@dataclass(frozen=True)
class Person:
    """One identity's appearance; colour fields index the domain's :class:`Palette` lists.

    ``upper`` and ``lower`` index ``palette.upper`` / ``palette.lower``; ``shoes``, ``hair``
    and ``skin`` their own lists; every other colour field indexes ``palette.accent``.
    """

    height: float
    build: float
    skin: int
    hair: int
    hair_length: int
    hat: int
    hat_color: int
    glasses: bool
    upper: int
    long_sleeves: bool
    pattern: int
    pattern_color: int
    stripe_width: float
    open_jacket: bool
    inner: int
    logo: int
    logo_color: int
    logo_offset: float
    logo_size: float
    back_print: int
    back_color: int
    lower_type: int
    lower: int
    side_stripe: bool
    side_stripe_color: int
    shoes: int
    bag: int
    bag_color: int
    bag_side: int


def person_to_dict(person: Person) -> dict:
    """JSON-ready dict of a person's attributes (plain ints, floats and bools)."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(person).items()}


def _pick(rng: np.random.Generator, table) -> int:
    weights = np.array([w for _, _, w in table], dtype=np.float64)
    return int(rng.choice(len(table), p=weights / weights.sum()))


def _other(rng: np.random.Generator, n: int, avoid: int) -> int:
    """A random index in ``range(n)`` different from ``avoid`` (pattern != base colour)."""
    k = int(rng.integers(n - 1))
    return k + 1 if k >= avoid else k


def sample_person(rng: np.random.Generator, palette: Palette) -> Person:
    """Draw one identity's attributes from the domain's palette and attribute frequencies."""
    n_acc = len(palette.accent)
    upper = _pick(rng, palette.upper)
    upper_name = palette.upper[upper][0]
    # An accent colour that is not (by name) the garment's own colour, so patterns show.
    acc_names = [name for name, _, _ in palette.accent]
    base_acc = acc_names.index(upper_name) if upper_name in acc_names else -1

    def accent_unlike_upper() -> int:
        return _other(rng, n_acc, base_acc) if base_acc >= 0 else int(rng.integers(n_acc))

    pattern = int(rng.choice(4, p=[0.42, 0.22, 0.2, 0.16]))
    lower_type = int(rng.choice(3, p=[0.64, 0.2, 0.16]))
    bag = int(rng.choice(4, p=[0.38, 0.30, 0.2, 0.12]))
    hat = int(rng.choice(3, p=[0.8, 0.12, 0.08]))
    return Person(
        height=float(rng.uniform(0.9, 1.0)),
        build=float(rng.uniform(0.86, 1.18)),
        skin=_pick(rng, palette.skin),
        hair=_pick(rng, palette.hair),
        hair_length=int(rng.choice(3, p=[0.55, 0.2, 0.25])),
        hat=hat,
        hat_color=int(rng.integers(n_acc)),
        glasses=bool(rng.random() < 0.18),
        upper=upper,
        long_sleeves=bool(rng.random() < 0.55),
        pattern=pattern,
        pattern_color=accent_unlike_upper(),
        stripe_width=float(rng.uniform(0.022, 0.042)),
        open_jacket=bool(rng.random() < 0.15),
        inner=accent_unlike_upper(),
        logo=int(rng.choice(6, p=[0.55, 0.09, 0.09, 0.09, 0.09, 0.09])),
        logo_color=accent_unlike_upper(),
        logo_offset=float(rng.choice([-0.045, 0.0, 0.045])),
        logo_size=float(rng.uniform(0.028, 0.05)),
        back_print=int(rng.choice(4, p=[0.75, 0.09, 0.08, 0.08])),
        back_color=accent_unlike_upper(),
        lower_type=lower_type,
        lower=_pick(rng, palette.lower),
        side_stripe=bool(lower_type == 0 and rng.random() < 0.18),
        side_stripe_color=int(rng.integers(n_acc)),
        shoes=_pick(rng, palette.shoes),
        bag=bag,
        bag_color=int(rng.integers(n_acc)),
        bag_side=int(rng.choice([-1, 1])),
    )


class _Pen:
    """Maps body units to canvas pixels and fills shapes with jittered colours."""

    def __init__(self, canvas: np.ndarray, cx: float, top: float, height: float,
                 rng: np.random.Generator, jitter: float):
        self.canvas = canvas
        self.cx = cx
        self.top = top
        self.h = height
        # One batch of jitter values per person: drawing them one colour at a time costs
        # more than the fills themselves.
        self._jitter = (rng.uniform(-jitter, jitter, (48, 3)) if jitter
                        else np.zeros((48, 3))).tolist()
        self._next = 0

    def color(self, bgr, shade: float = 1.0) -> tuple[int, int, int]:
        j = self._jitter[self._next % 48]
        self._next += 1
        return tuple(int(min(255.0, max(0.0, c * shade + d))) for c, d in zip(bgr, j, strict=True))

    def pts(self, uv) -> np.ndarray:
        cx, top, h, hu = self.cx, self.top, self.h, self.h * _ASPECT
        return np.array([[round(cx + u * hu), round(top + v * h)] for u, v in uv], np.int32)

    def poly(self, uv, color) -> None:
        cv2.fillConvexPoly(self.canvas, self.pts(uv), color)

    def rect(self, u0, v0, u1, v1, color) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], color)

    def ellipse(self, u, v, au, av, color, start=0, end=360) -> None:
        center = (int(round(self.cx + u * self.h * _ASPECT)), int(round(self.top + v * self.h)))
        axes = (max(1, int(round(au * self.h * _ASPECT))), max(1, int(round(av * self.h))))
        cv2.ellipse(self.canvas, center, axes, 0, start, end, color, -1)

    def line(self, u0, v0, u1, v1, width, color) -> None:
        p = self.pts([(u0, v0), (u1, v1)])
        cv2.line(self.canvas, tuple(map(int, p[0])), tuple(map(int, p[1])), color,
                 max(1, int(round(width * self.h))))


def _lerp(a, b, t):
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _limb(pen: _Pen, top_l, top_r, bot_l, bot_r, t0, t1, color) -> None:
    """Fill the part of a limb quad between fractions ``t0`` and ``t1`` of its length."""
    pen.poly([_lerp(top_l, bot_l, t0), _lerp(top_r, bot_r, t0),
              _lerp(top_r, bot_r, t1), _lerp(top_l, bot_l, t1)], color)


def _shape(pen: _Pen, kind: int, u: float, v: float, r: float, color) -> None:
    """A logo or back-print shape of half-size ``r`` centred at ``(u, v)``."""
    if kind == 1:
        pen.ellipse(u, v, r, r, color)
    elif kind == 2:
        pen.rect(u - r, v - r, u + r, v + r, color)
    elif kind == 3:
        pen.poly([(u, v - r), (u + r, v + r), (u - r, v + r)], color)
    elif kind == 4:
        w = r * 0.38
        pen.rect(u - r, v - w, u + r, v + w, color)
        pen.rect(u - w, v - r, u + w, v + r, color)
    elif kind == 5:
        h = r * 0.35
        pen.rect(u - r, v - r, u + r, v - r + 2 * h, color)
        pen.rect(u - r, v + r - 2 * h, u + r * 0.4, v + r, color)


def draw_person(canvas: np.ndarray, person: Person, palette: Palette, view: str, phase: float,
                cx: float, top: float, height: float, rng: np.random.Generator,
                jitter: float = 8.0) -> None:
    """Paint ``person`` on ``canvas`` in place.

    Parameters
    ----------
    canvas : ndarray [H, W, 3] uint8
        BGR image to draw on (any size; parts outside are clipped).
    person : Person
        The identity.
    palette : Palette
        Colours the person's indices refer to.
    view : {"front", "back", "left", "right"}
        Viewpoint; ``left``/``right`` = profile walking towards the image's left/right.
    phase : float
        Walking phase, radians: sets leg spread and arm swing.
    cx, top, height : float
        Body centre column, top-of-head row and head-to-sole height, canvas pixels.
    rng : numpy Generator
        Source of the small per-image colour jitter.
    jitter : float
        Maximum colour jitter per channel, 0-255 scale.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    pen = _Pen(canvas, cx, top, height * person.height, rng, jitter)
    # The body is drawn at height*person.height; keep soles at the nominal bottom.
    pen.top = top + height * (1.0 - person.height)
    side = view in ("left", "right")
    d = -1.0 if view == "left" else 1.0  # facing direction in profile
    s = person.build
    skin = pen.color(palette.skin[person.skin][1])
    hair = pen.color(palette.hair[person.hair][1])
    upper = pen.color(palette.upper[person.upper][1])
    lower_base = palette.lower[person.lower][1]
    lower = pen.color(lower_base)
    lower_back = pen.color(lower_base, 0.78)
    shoes = pen.color(palette.shoes[person.shoes][1])
    accent = palette.accent
    bag_col = pen.color(accent[person.bag_color][1])
    swing = np.sin(phase)

    tw = (0.068 if side else 0.108) * s  # torso half-width
    v_sh, v_waist, v_hip, v_ankle = 0.16, 0.52, 0.50, 0.955

    # Backpack body from the side sits behind the back.
    if side and person.bag == 1:
        pen.rect(-d * (tw + 0.07 * s), 0.19, -d * tw, 0.43, bag_col)
    # Long hair from the front falls behind the shoulders: drawn before the torso.
    if view == "front" and person.hair_length >= 1:
        low = 0.22 if person.hair_length == 2 else 0.14
        pen.rect(-0.056, 0.05, 0.056, low, hair)

    # Legs and lower garment.
    legs = []
    if side:
        a = 0.12 * swing
        for sign, shade in ((-1.0, 0.78), (1.0, 1.0)):
            foot = sign * a * d
            legs.append(((-0.042 * s, v_hip + 0.02), (0.042 * s, v_hip + 0.02),
                         (foot - 0.03 * s, v_ankle), (foot + 0.03 * s, v_ankle), shade, foot))
    else:
        lx = 0.045 * s
        lift = 0.015 * swing
        for sign in (-1.0, 1.0):
            fv = v_ankle - max(0.0, sign * lift)
            legs.append(((sign * 0.085 * s, v_hip + 0.02), (sign * 0.004, v_hip + 0.02),
                         (sign * (lx + 0.032 * s), fv), (sign * (lx - 0.03 * s), fv), 1.0,
                         sign * lx))
    skin_legs = person.lower_type != 0
    for tl, tr, bl, br, shade, _ in legs:
        if skin_legs:
            _limb(pen, tl, tr, bl, br, 0.0, 1.0, pen.color(palette.skin[person.skin][1], shade))
        stop = {0: 1.0, 1: 0.4, 2: 0.0}[person.lower_type]
        if stop > 0:
            col = lower if shade == 1.0 else lower_back
            _limb(pen, tl, tr, bl, br, 0.0, stop, col)
        if person.side_stripe:
            sc = pen.color(accent[person.side_stripe_color][1], shade)
            if side:
                mid_t, mid_b = _lerp(tl, tr, 0.5), _lerp(bl, br, 0.5)
                pen.line(mid_t[0], mid_t[1], mid_b[0], mid_b[1], 0.016, sc)
            else:
                pen.line(tl[0], tl[1], bl[0], bl[1], 0.008, sc)
    # Shoes.
    for _, _, bl, br, shade, foot in legs:
        fu = foot + (0.016 * d if side else 0.0)
        fv = (bl[1] + br[1]) / 2 + 0.018
        pen.ellipse(fu, fv, 0.05 if side else 0.034 * s, 0.02,
                    pen.color(palette.shoes[person.shoes][1], shade) if shade != 1.0 else shoes)
    # Hips / skirt.
    if person.lower_type == 2:
        pen.poly([(-0.085 * s, v_hip - 0.02), (0.085 * s, v_hip - 0.02),
                  (0.13 * s, 0.72), (-0.13 * s, 0.72)], lower)
    else:
        hw = (0.045 if side else 0.088) * s
        pen.rect(-hw, v_hip - 0.02, hw, 0.6, lower)

    # Arm behind the body in profile.
    if side:
        hand_u = 0.09 * swing * d
        sleeve_t = 1.0 if person.long_sleeves else 0.35
        top_l, top_r = (-0.022 * s, 0.18), (0.022 * s, 0.18)
        bot_l, bot_r = (-hand_u - 0.02 * s, 0.47), (-hand_u + 0.02 * s, 0.47)
        _limb(pen, top_l, top_r, bot_l, bot_r, 0.0, 1.0,
              pen.color(palette.skin[person.skin][1], 0.78))
        _limb(pen, top_l, top_r, bot_l, bot_r, 0.0, sleeve_t,
              pen.color(palette.upper[person.upper][1], 0.78))

    # Neck and torso.
    pen.rect(-0.022, 0.11, 0.022, 0.18, skin)
    pen.ellipse(0.0, v_sh + 0.02, tw, 0.03, upper)
    pen.rect(-tw, v_sh + 0.02, tw, v_waist, upper)
    pcol = pen.color(accent[person.pattern_color][1])
    if person.pattern == 1:  # horizontal stripes
        w = person.stripe_width
        v = v_sh + 0.03 + w * 0.5
        while v < v_waist - 0.005:
            pen.rect(-tw, v, tw, min(v + w, v_waist), pcol)
            v += 2 * w
    elif person.pattern == 2:  # two-tone: yoke and shoulders in the second colour
        pen.ellipse(0.0, v_sh + 0.02, tw, 0.03, pcol)
        pen.rect(-tw, v_sh + 0.02, tw, v_sh + 0.13, pcol)
    elif person.pattern == 3:  # checks
        period, w = 0.058, 0.016
        v = v_sh + 0.035
        while v < v_waist - 0.005:
            pen.rect(-tw, v, tw, v + w, pcol)
            v += period
        u = -tw + 0.02
        while u < tw - 0.005:
            pen.rect(u, v_sh + 0.02, min(u + w, tw), v_waist, pcol)
            u += period
    if person.open_jacket:
        inner = pen.color(accent[person.inner][1])
        if view == "front":
            pen.rect(-0.028 * s, v_sh + 0.01, 0.028 * s, v_waist, inner)
        elif side:
            pen.rect(d * (tw - 0.02), v_sh + 0.03, d * tw, v_waist, inner)
    if view == "front" and person.logo:
        u = person.logo_offset * s
        if person.open_jacket:  # keep the logo on the jacket, off the opening
            u = (0.06 if u >= 0 else -0.06) * s
        _shape(pen, person.logo, u, 0.27, person.logo_size,
               pen.color(accent[person.logo_color][1]))
    if view == "back" and person.back_print and person.bag != 1:
        col = pen.color(accent[person.back_color][1])
        if person.back_print == 3:
            pen.rect(-tw, 0.3, tw, 0.35, col)
        else:
            _shape(pen, person.back_print, 0.0, 0.31, 0.06 * s, col)

    # Arms in front/back view, or the near arm in profile.
    sleeve_col = pcol if person.pattern == 2 else upper
    sleeve_t = 1.0 if person.long_sleeves else 0.33
    if side:
        hand_u = 0.09 * swing * d
        arms = [((-0.022 * s, 0.18), (0.022 * s, 0.18),
                 (hand_u - 0.02 * s, 0.47), (hand_u + 0.02 * s, 0.47))]
    else:
        arms = []
        for sign in (-1.0, 1.0):
            arms.append(((sign * tw, 0.17), (sign * (tw + 0.032 * s), 0.18),
                         (sign * (tw + 0.012 * s), 0.48),
                         (sign * (tw + 0.04 * s + 0.01 * swing * sign), 0.475)))
    for tl, tr, bl, br in arms:
        _limb(pen, tl, tr, bl, br, 0.0, 1.0, skin)
        _limb(pen, tl, tr, bl, br, 0.0, sleeve_t, sleeve_col)
        hu = (bl[0] + br[0]) / 2
        pen.ellipse(hu, 0.495, 0.02 * s, 0.022, skin)

    # Bags.
    if person.bag == 1:
        if view == "back":
            pen.ellipse(0.0, 0.2, 0.08 * s, 0.03, bag_col)
            pen.rect(-0.08 * s, 0.2, 0.08 * s, 0.43, bag_col)
            pen.rect(-0.055 * s, 0.33, 0.055 * s, 0.41, pen.color(accent[person.bag_color][1], 0.72))
        elif view == "front":
            strap = pen.color(accent[person.bag_color][1], 0.8)
            for sign in (-1.0, 1.0):
                pen.rect(sign * 0.06 * s - 0.009, v_sh + 0.01, sign * 0.06 * s + 0.009, 0.36,
                         strap)
        else:
            pen.rect(-0.012, v_sh + 0.01, 0.012, 0.34, pen.color(accent[person.bag_color][1], 0.8))
    elif person.bag in (2, 3):
        # bag_side is the wearer's side; mirrored when seen from the front.
        bs = person.bag_side * (-1.0 if view == "front" else 1.0)
        if person.bag == 2:
            if not side:
                pen.line(-bs * tw * 0.8, v_sh + 0.01, bs * tw * 0.9, 0.47, 0.012,
                         pen.color(accent[person.bag_color][1], 0.7))
                pen.rect(bs * (tw + 0.005), 0.44, bs * (tw + 0.09 * s), 0.56, bag_col)
            else:
                pen.line(-d * 0.02, v_sh + 0.01, d * 0.03, 0.45, 0.012,
                         pen.color(accent[person.bag_color][1], 0.7))
                pen.rect(-0.05 * s, 0.44, 0.05 * s, 0.55, bag_col)
        else:
            if not side:
                hu = bs * (tw + 0.026 * s)
                pen.rect(hu - 0.032, 0.5, hu + 0.032, 0.6, bag_col)
            else:
                hand_u = 0.09 * swing * d
                pen.rect(hand_u - 0.035, 0.5, hand_u + 0.035, 0.59, bag_col)

    # Head and hair.
    hv = 0.072
    if view == "back":
        pen.ellipse(0.0, hv, 0.048, 0.062, hair)
        if person.hair_length >= 1:
            low = 0.22 if person.hair_length == 2 else 0.14
            pen.rect(-0.05, hv, 0.05, low, hair)
    elif view == "front":
        pen.ellipse(0.0, hv, 0.046, 0.062, skin)
        pen.ellipse(0.0, hv - 0.012, 0.05, 0.05, hair, 180, 360)
        if person.hair_length == 2:
            pen.rect(-0.056, hv - 0.01, -0.036, 0.19, hair)
            pen.rect(0.036, hv - 0.01, 0.056, 0.19, hair)
        if person.glasses:
            pen.rect(-0.036, hv - 0.002, 0.036, hv + 0.01, (20, 20, 20))
    else:
        pen.ellipse(0.0, hv, 0.052, 0.062, skin)
        pen.ellipse(0.0, hv - 0.012, 0.054, 0.05, hair, 180, 360)
        pen.ellipse(-d * 0.018, hv, 0.036, 0.058, hair)
        if person.hair_length >= 1:
            low = 0.21 if person.hair_length == 2 else 0.14
            pen.rect(min(-d * 0.05, -d * 0.012), hv, max(-d * 0.05, -d * 0.012), low, hair)
        if person.glasses:
            pen.rect(min(d * 0.02, d * 0.054), hv - 0.002, max(d * 0.02, d * 0.054), hv + 0.01,
                     (20, 20, 20))
    if person.hat:
        hat = pen.color(accent[person.hat_color][1])
        if person.hat == 1:
            pen.ellipse(0.0, hv - 0.01, 0.053, 0.052, hat, 180, 360)
            if view == "front":
                pen.rect(-0.05, hv - 0.016, 0.05, hv - 0.004, pen.color(accent[person.hat_color][1], 0.7))
            elif side:
                pen.rect(min(d * 0.03, d * 0.088), hv - 0.016, max(d * 0.03, d * 0.088),
                         hv - 0.006, pen.color(accent[person.hat_color][1], 0.7))
        else:
            pen.ellipse(0.0, hv + 0.0, 0.054, 0.068, hat, 180, 360)
            pen.rect(-0.054, hv - 0.012, 0.054, hv + 0.002, pen.color(accent[person.hat_color][1], 0.75))
