"""The person's path: its state from the tiny synthetic set (timestamps included) against the
engine's transits computed here, the reasons an empty chart gives, and the dock in the window
(a mark adds a sighting, a click selects it in the grid)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.analysis.transit import pivot_transits
from engine.data.samples import Sample
from engine.postprocess.transit_model import learn_transits
from viewer.marks.state import SAME
from viewer.path.state import CANDIDATE, CONFIRMED, LEARNED, PIVOTS, QUERY, build_path


def _query_with_matches(session, at_least=2):
    for q, s in enumerate(session.dataset.query):
        hits = np.flatnonzero((session.gallery_pids == s.pid) & (session.gallery_cams != s.cam))
        if len(hits) >= at_least:
            return q, [int(g) for g in hits]
    pytest.skip("no query with enough true matches in the tiny set")


def test_path_state_from_the_tiny_set(loaded):
    session = loaded.session
    dataset = session.dataset
    q, hits = _query_with_matches(session)
    query, gallery = dataset.query[q], dataset.gallery
    transits = pivot_transits(session.logits["qg"], session.query_cams,
                              session.times_of(dataset.query), session.gallery_cams,
                              session.times_of(gallery), k=3)
    positives = hits[:2]
    others = [g for g in np.argsort(-session.logits["qg"][q]) if g not in positives][:4]
    candidates = [(int(g), r) for r, g in enumerate(others, start=1)] + [(positives[0], 9)]
    model = build_path(query, gallery, positives, candidates, transits, sigma=200.0)
    assert not model.reason
    sightings = model.sightings
    assert [p.kind for p in sightings].count(QUERY) == 1
    assert sorted(p.gallery for p in sightings if p.kind == CONFIRMED) == sorted(positives)
    assert [p.time for p in sightings] == sorted(p.time for p in sightings)
    # Candidates: the unmarked ones only (a marked image is a sighting, not a candidate).
    assert [p.gallery for p in model.points if p.kind == CANDIDATE] == [int(g) for g in others]
    assert set(model.cameras) == {p.cam for p in model.points}
    assert len(model.legs) == len(sightings) - 1
    for leg, (a, b) in zip(model.legs, zip(sightings, sightings[1:], strict=False), strict=True):
        assert (leg.start, leg.end) == (a, b)
        assert leg.transit == pytest.approx(b.time - a.time)
        expected = transits[(a.cam, b.cam)].median
        assert leg.expected == pytest.approx(expected)
        assert leg.plausibility == pytest.approx(math.exp(-((b.time - a.time - expected) / 200.0) ** 2))
    # The pair table: each leg's pair, with the confirmed and the pivots' medians.
    assert {(r.start, r.end) for r in model.pairs} == {(leg.start.cam, leg.end.cam) for leg in model.legs}
    for row in model.pairs:
        assert row.model == transits[(row.start, row.end)]
        assert row.learned is None and row.learned_count == 0
    assert all(leg.basis == PIVOTS for leg in model.legs)

    # With the learned transit model, a leg of a pair it knows is scored by it (as feedback
    # scores candidates); a pair it does not know falls back to the pivots.
    learned = learn_transits(session.distance_block("gg"), session.gallery_cams,
                             session.times_of(gallery), min_z=-1e9, min_count=1)
    known = {(leg.start.cam, leg.end.cam) for leg in model.legs} & set(learned.density)
    assert known, "the tiny set should give a leg of a learned pair"
    with_learned = build_path(query, gallery, positives, candidates, transits, 200.0, learned)
    for leg, old in zip(with_learned.legs, model.legs, strict=True):
        pair = (leg.start.cam, leg.end.cam)
        if pair in learned.density:
            assert leg.basis == LEARNED
            assert leg.plausibility == learned.plausibility(pair[0], leg.start.time, [pair[1]],
                                                            [leg.end.time])[0]
            assert leg.expected == learned.most_likely(*pair, 1 if leg.transit >= 0 else -1)
        else:
            assert leg == old
    for row in with_learned.pairs:
        assert row.learned == learned.most_likely(row.start, row.end)
        assert row.learned_count == learned.counts.get((row.start, row.end), 0)


def test_an_empty_path_says_why():
    gallery = [Sample("/g0.jpg", 1, 0, 10.0), Sample("/g1.jpg", 1, 1, None)]
    untimed = build_path(Sample("/q.jpg", 1, 1, None), gallery, [0], [], None, 200.0)
    assert not untimed.points and "capture time" in untimed.reason
    alone = build_path(Sample("/q.jpg", 1, 1, 5.0), gallery, [], [(0, 1)], None, 200.0)
    assert not alone.reason and "Mark results" in alone.note and len(alone.sightings) == 1
    # A confirmed sighting without time is left out, and said so; no model: legs not scored.
    partial = build_path(Sample("/q.jpg", 1, 1, 5.0), gallery, [0, 1], [], None, 200.0)
    assert len(partial.sightings) == 2 and "without a capture time" in partial.note
    assert math.isnan(partial.legs[0].plausibility) and partial.legs[0].expected is None


def test_path_dock_follows_marks_and_selects_on_click(qtbot, window, refine_calls):
    win = window
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    q, hits = _query_with_matches(win.state.session, at_least=1)
    win.state.select_query(q)
    win.show_path()
    dock, ctl = win.path_dock, win.path_dock.controller
    qtbot.waitUntil(lambda: ctl.active and ctl.transits() is not None, timeout=20000)
    assert len(ctl.model.sightings) == 1 and dock.scatter is not None
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        win.marks_ctl.mark(q, hits[0], SAME)
    assert [p.gallery for p in ctl.model.sightings if p.kind == CONFIRMED] == [hits[0]]
    assert len(ctl.model.legs) == 1 and dock.table.rowCount() == 1
    # Click the candidate drawn last: the grid selects it.
    spots = dock.scatter.points()
    target = next(s for s in reversed(spots) if int(s.data()) >= 0 and int(s.data()) != hits[0])
    dock._clicked(dock.scatter, [target])
    assert win.state.selected_item().gallery_index == int(target.data())
    # A case's path.png is drawn at its own size, however small the dock is on screen.
    from PySide6.QtGui import QImage

    win.resizeDocks([dock], [150], Qt.Orientation.Vertical)
    image = QImage.fromData(win.path_png(size=(900, 480)))
    assert dock.widget().height() < 300 and image.height() >= 450 and image.width() >= 850
    win.path_dock.hide()
    qtbot.waitUntil(lambda: not ctl.active, timeout=2000)


def test_path_dock_without_timestamps_says_why(qtbot, window, monkeypatch):
    from viewer.state import ViewerState

    monkeypatch.setattr(ViewerState, "has_times", property(lambda self: False))
    win = window
    win.show_path()
    ctl = win.path_dock.controller
    assert ctl.model.reason and "no capture times" in ctl.model.reason
    assert win.path_dock.note.text() == ctl.model.reason and win.path_dock.scatter is None
    assert ctl.ready()   # nothing to wait for: a case is saved at once


def test_the_path_view_alone_never_starts_scoring_the_gg_block(qtbot, window, monkeypatch):
    """Without the g-g block the legs use TLift's pivots, and no job is asked to learn."""
    from engine.session import Session

    win = window
    q, _ = _query_with_matches(win.state.session, at_least=1)
    win.state.select_query(q)
    monkeypatch.setattr(Session, "logits", property(lambda self: {"qg": self.blocks.logits["qg"]}))
    submitted = []
    real_submit = win.controller.jobs.submit
    monkeypatch.setattr(win.controller.jobs, "submit",
                        lambda fn, *a, **k: submitted.append(k.get("group")) or real_submit(fn, *a, **k))
    win.show_path()
    ctl = win.path_dock.controller
    assert ctl.learned() is None
    assert "path-learned" not in submitted
    win.path_dock.hide()
