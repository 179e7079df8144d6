"""The inspector's Qt-free state: scene geometry, levels, pins, per-method scores."""
from __future__ import annotations

import numpy as np
import pytest

from engine.explain.inspect import pair_heatmap
from engine.models.correspondence import global_correspondence, pair_correspondence
from viewer.inspector.state import (
    DEFAULT_KIND,
    KINDS,
    InspectorState,
    SceneLayout,
    kinds_for,
    method_scores,
    nearest_segment,
)


def _corr(seed=0, h=8, w=4, c=6):
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(2, c, h, w))
    maps /= np.linalg.norm(maps, axis=1, keepdims=True)
    return pair_correspondence(maps[0], maps[1], rng.normal(size=h * w), -1.5, centre=0.2)


def test_scene_layout_round_trips_locations():
    layout = SceneLayout(map_h=8, map_w=4, image_h=128.0, image_w=64.0, gap=14.0)
    for side in ("probe", "gallery"):
        centres = layout.centres(side)
        for index in range(32):
            assert layout.location_at(*centres[index]) == (side, index)
            x, y, w, h = layout.cell_rect(side, index)
            assert x <= centres[index][0] < x + w and y <= centres[index][1] < y + h
    assert layout.location_at(64.0 + 7.0, 50.0) is None          # in the gap
    assert layout.location_at(10.0, -1.0) is None and layout.location_at(10.0, 128.0) is None
    assert layout.location_at(64.0 + 14.0, 0.0) == ("gallery", 0)
    assert layout.location_at(2 * 64.0 + 14.0 - 1e-6, 128.0 - 1e-6) == ("gallery", 31)


def test_levels_lines_pins_and_bands():
    state = InspectorState()
    assert state.heatmap("probe") is None and state.lines() == [] and state.bands() is None
    corr = _corr()
    state.show((0, 5), corr)
    state.kind = "similarity"
    lo, hi = state.levels()
    values = np.r_[corr.probe_heatmap.ravel(), corr.gallery_heatmap.ravel()]
    assert (lo, hi) == pytest.approx((values.min(), values.max()))
    state.kind = "contribution"
    lo, hi = state.levels()
    assert lo == -hi and hi == pytest.approx(np.abs(np.r_[corr.probe_contribution.ravel(),
                                                          corr.gallery_contribution.ravel()]).max())
    # Lines: ordered by the split shown (w*a here, w*(a - mu) otherwise); both sides on request.
    lines = state.lines()
    assert [ln.contribution for ln in lines] == sorted(corr.probe_contribution.ravel(), reverse=True)[:10]
    state.kind = "similarity"
    rel = corr.relative_contribution("probe").ravel()
    assert [ln.contribution for ln in state.lines()] == pytest.approx(sorted(rel, reverse=True)[:10])
    state.line_side = "both"
    assert {ln.side for ln in state.lines()} == {"probe", "gallery"} and len(state.lines()) == 20
    # Bands of the relative split sum to the logit minus its bias.
    bands = state.bands()
    assert bands["total"].sum() + corr.relative_bias == pytest.approx(corr.logit, abs=1e-5)
    for split, p, g, b in state.sums():
        assert p + g + b == pytest.approx(corr.logit, abs=1e-5), split
    # Hover and pin: the pin wins, a second click unpins, a new pair clears both.
    state.hover = ("probe", 3)
    assert state.focus().target == corr.probe_to_gallery[3]
    state.toggle_pin(("gallery", 2))
    assert state.focus().side == "gallery" and state.focus().target == corr.gallery_to_probe[2]
    state.toggle_pin(("gallery", 2))
    assert state.pinned is None and state.focus().source == 3
    state.toggle_pin(("probe", 1))
    state.show((0, 6), _corr(1))
    assert state.pinned is None and state.hover is None


def test_method_scores_rank_as_the_protocol_counts():
    pids = np.array([5, 7, 5, 9, 5])
    cams = np.array([0, 1, 1, 2, 0])
    raw = np.array([0.1, 0.2, 0.3, 0.4, 0.05], np.float32)      # order: 4 (junk), 0 (junk), 1, 2, 3
    rr = np.array([0.5, 0.1, 0.2, 0.3, 0.4], np.float32)        # order: 1, 2, 3, 4 (junk), 0 (junk)
    scores = method_scores({"raw": raw, "+RR": rr, "+RR+TLift": None}, {"+RR+TLift": "no timestamps"},
                           gallery_index=2, raw_logit=3.5, query_pid=5, query_cam=0,
                           gallery_pids=pids, gallery_cams=cams)
    by = {s.method: s for s in scores}
    assert by["raw"].rank == 2 and by["raw"].value == 3.5 and by["raw"].label == "logit"
    assert by["+RR"].rank == 2 and by["+RR"].value == pytest.approx(0.2)
    assert by["+RR+TLift"].value is None and "no timestamps" in by["+RR+TLift"].text()
    junk = method_scores({"raw": raw}, {}, gallery_index=4, raw_logit=1.0, query_pid=5, query_cam=0,
                         gallery_pids=pids, gallery_cams=cams)
    assert junk[0].rank == 0 and "junk" in junk[0].text()


def test_times_in_one_format():
    from viewer.formatting import format_rank, format_time

    assert format_time(0.0) == "0:00:00.0"
    assert format_time(83.44) == "0:01:23.4"
    assert format_time(59.96) == "0:01:00.0"          # rounding carries into the minutes
    assert format_time(3723.46) == "1:02:03.5"
    assert format_time(None) == "" and format_time(float("nan")) == ""
    assert format_rank(3) == "#3" and format_rank(0) == "junk"


def test_threshold_lines_draw_a_share_of_the_locations_whatever_the_similarity_range():
    state = InspectorState()
    corr = _corr(2)
    # The demo head's case: every similarity within 0.969-0.998.
    for heat in (corr.probe_heatmap, corr.gallery_heatmap):
        heat[:] = 0.969 + 0.029 * (heat - heat.min()) / np.ptp(heat)
    state.show((0, 1), corr)
    state.line_mode = "threshold"
    n = corr.probe_heatmap.size
    counts = []
    for percent in range(1, 101):
        state.threshold_share = percent / 100
        lines = state.lines()
        counts.append(len(lines))
        assert len(lines) == max(1, int(np.ceil(percent * n / 100 - 1e-9)))
        cut = state.similarity_cut("probe")
        assert all(ln.similarity >= cut for ln in lines)
        assert sum(corr.probe_heatmap.ravel() >= cut) == len(lines)
    assert counts[0] == 1 and counts[-1] == n and counts == sorted(counts)
    assert state.similarity_cut("probe") == pytest.approx(0.969)


def test_nearest_segment_measures_to_the_segment_not_its_box():
    segments = np.array([[0.0, 0.0, 100.0, 100.0], [0.0, 50.0, 10.0, 50.0]])
    assert nearest_segment(segments, 50.0, 51.0) == (0, pytest.approx(1 / np.sqrt(2)))
    index, dist = nearest_segment(segments, 90.0, 10.0)      # inside the long line's box, far off it
    assert index == 0 and dist == pytest.approx(80 / np.sqrt(2))
    assert nearest_segment(segments, 12.0, 50.0) == (1, pytest.approx(2.0))   # past the end
    assert nearest_segment(np.zeros((0, 4)), 1.0, 1.0) == (-1, float("inf"))


def test_the_default_heatmap_follows_the_pair_and_adds_up_to_the_score():
    """Two results of one query: the default heatmap differs (the head's weights alone would
    not), and with the relative bias it adds up to each pair's logit."""
    rng = np.random.default_rng(7)
    h, w, c = 8, 4, 6
    maps = rng.normal(size=(3, c, h, w))
    maps /= np.linalg.norm(maps, axis=1, keepdims=True)
    weight = rng.normal(size=h * w)
    state = InspectorState()
    assert state.kind == DEFAULT_KIND == "pair"
    shown = []
    for g in (1, 2):
        corr = pair_correspondence(maps[0], maps[g], weight, -1.5, centre=0.2)
        state.show((0, g), corr)
        np.testing.assert_array_equal(state.heatmap("probe"), pair_heatmap(corr, "probe"))
        assert state.heatmap("probe").sum(dtype=np.float64) + corr.relative_bias == pytest.approx(
            corr.logit, abs=1e-5)
        shown.append(state.heatmap("probe"))
    assert not np.allclose(shown[0], shown[1], atol=1e-3)
    lo, hi = state.levels()
    assert lo == -hi > -np.inf


def test_a_global_models_split_in_the_inspector_state():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(2, 6, 8, 4)) + 0.2
    corr = global_correspondence(A, B)
    assert kinds_for(corr) == tuple(k for k in KINDS if k != "relative")
    state = InspectorState()
    state.show((0, 1), corr)
    assert state.split_label() == "share"
    (split, p, g, b), = state.sums()
    assert p + g + b == pytest.approx(corr.logit, abs=1e-5)
    assert state.heatmap("probe").sum(dtype=np.float64) == pytest.approx(corr.logit, abs=1e-5)
    assert state.bands()["total"].sum() == pytest.approx(corr.logit, abs=1e-5)
    # lines: each query location to the gallery location with the largest pair term
    Af, Bf = A.reshape(6, -1), B.reshape(6, -1)
    for line in state.lines():
        assert line.target == int(np.argmax(Af[:, line.source] @ Bf))
