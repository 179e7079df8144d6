"""PNG plots (engine.analysis.plot_png): every file decodes, has content, and curves sit where the data
says; drawn without Qt."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from engine.analysis.plot_data import analyse_stages
from engine.analysis.plot_png import PLOT_BOX, png_files, stage_color
from engine.postprocess.pipeline import SweepPoint


@pytest.fixture
def plots():
    """Two stages of a small ranking problem (4 cameras) and sweeps of two parameters."""
    rng = np.random.default_rng(5)
    qp, gp = rng.integers(1, 10, 25), rng.integers(0, 10, 80)
    qc, gc = rng.integers(0, 4, 25), rng.integers(0, 4, 80)
    dist = (rng.random((25, 80)) - 0.2 * (qp[:, None] == gp[None, :])).astype(np.float32)
    worse = (dist + 0.5 * rng.random(dist.shape)).astype(np.float32)  # another ranking
    p = analyse_stages({"qaconv": worse, "qaconv+rr": dist}, qp, gp, qc, gc)
    sweeps = {"tau": [SweepPoint(v, 0.5 + 0.01 * i, 0.4) for i, v in enumerate([50.0, 100.0, 150.0])],
              "k": [SweepPoint(v, 0.6, 0.3 + 0.02 * i) for i, v in enumerate([5, 10, 20])]}
    return dataclasses.replace(p, sweeps=sweeps, sweep_base={"tau": 100.0, "k": 10},
                               sweep_stage="qaconv+tlift")


def _image(plots, name: str) -> np.ndarray:
    """One figure of ``plots`` decoded from its PNG bytes."""
    return cv2.imdecode(np.frombuffer(png_files(plots)[name], np.uint8), cv2.IMREAD_COLOR)


def _near(img, bgr, tol=40) -> np.ndarray:
    """Mask of pixels within ``tol`` of a BGR colour."""
    return (np.abs(img.astype(int) - np.array(bgr)).max(axis=2) <= tol)


@pytest.mark.slow
def test_every_png_decodes_with_content(plots):
    files = png_files(plots)
    assert list(files) == ["cmc.png", "roc.png", "score_distributions.png", "camera_pairs.png",
                           "tlift_sweep.png"]
    sizes = {"cmc.png": (520, 800), "roc.png": (520, 800), "score_distributions.png": (440, 1260),
             "tlift_sweep.png": (440, 680)}
    for name, data in files.items():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, name
        if name in sizes:
            assert img.shape[:2] == sizes[name], name
        colours = np.unique(img.reshape(-1, 3), axis=0)
        assert len(colours) > 20, name  # not blank: lines, text, anti-aliasing
        assert (img == 255).all(axis=2).mean() > 0.3, name  # white background
    for name in ("cmc.png", "roc.png"):  # every stage drawn in its own colour
        img = _image(plots, name)
        for s in plots.stages:
            assert _near(img, stage_color(s.name)).sum() > 200, (name, s.name)
    assert stage_color("qaconv") != stage_color("qaconv+rr")
    assert "tlift_sweep.png" not in png_files(dataclasses.replace(plots, sweeps=None))


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_cmc_curve_lands_at_its_rate(plots, rate):
    """A constant CMC draws a horizontal line of the stage's colour at that height of the box."""
    stage = dataclasses.replace(plots.stages[0], cmc=np.full(50, rate))
    img = _image(dataclasses.replace(plots, stages=(stage,), current=stage.name), "cmc.png")
    x0, y0, x1, y1 = PLOT_BOX
    mask = _near(img, stage_color(stage.name))
    row = round(y1 - rate * (y1 - y0))
    assert mask[row, x0 + 5:x1 - 5].mean() > 0.95
    # nowhere else in the box (rows 4 px away; the legend sits in the lower right corner)
    for other in (row + 4, row - 4):
        if y0 < other < y1:
            assert mask[other, x0 + 5:x0 + 300].mean() < 0.05


def test_camera_pairs_colours_follow_values(plots):
    """The best cell is viridis' top colour, the worst its bottom; NaN cells are grey."""
    img = _image(plots, "camera_pairs.png")
    r1 = plots.stage().cameras.rank1
    assert np.isnan(np.diag(r1)).all()
    viridis = cv2.applyColorMap(np.array([[0, 255]], np.uint8), cv2.COLORMAP_VIRIDIS)[0]
    cell, x0, y0 = 64, 90, 80  # the rank-1 matrix's layout in camera_pairs_image
    corner = [(x0 + j * cell + 4, y0 + i * cell + 4) for i in range(len(r1))
              for j in range(len(r1))]  # a pixel clear of the cell's text
    for flat, want in ((np.nanargmin(r1), viridis[0]), (np.nanargmax(r1), viridis[1]),
                       (0, (235, 235, 235))):
        x, y = corner[flat]
        np.testing.assert_allclose(img[y, x], want, atol=2)
