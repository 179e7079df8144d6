"""What the window says about the list on screen (issue 18, items 7 and 9): junk is never chosen
for the user, and one description of the ranking (which image, which method and stages were
applied, its AP) is what the header, the grid, the inspector, the occlusion panel and the CSV
export all show."""
from __future__ import annotations

import csv
import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.viewer.conftest import grid_gallery_order


def _first_is_junk(state, query) -> bool:
    items = state.results(query)
    return bool(items) and items[0].status == "junk"


def _csv_methods(qtbot, win, path) -> set[str]:
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000):
        win.controller.export(str(path), all_queries=False, top_k=5)
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["method"] for row in csv.DictReader(fh)}


def _tooltip(win, row: int = 0) -> str:
    model = win.grid.model_
    return model.data(model.index(row), Qt.ItemDataRole.ToolTipRole)


def _open_inspector(qtbot, win):
    win.grid.setFocus()
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    view = win.inspector.build()
    ins, jobs = win.inspector_ctl.inspector, win.controller.jobs
    try:
        qtbot.waitUntil(win.inspector_ctl.is_ready, timeout=60000)
    except Exception:
        raise AssertionError(f"not ready: corr {ins.correspondence is not None}, busy {win.state.busy!r}, "
                             f"scores {[s.text() for s in ins.scores]}, jobs {[w.name for w in jobs.workers]}, "
                             f"error {win.state.error}") from None
    return view


def test_junk_is_never_the_default_result(qtbot, window):
    """A query opens on its result #1 in the grid, Down in the inspector opens the next query's
    #1, and the sensitivity map's target is that result; a junk tile is still selectable."""
    win, state = window, window.state
    visible = state.visible_queries()
    start = next(i for i in range(len(visible) - 1) if _first_is_junk(state, visible[i + 1]))
    state.select_query(visible[start])
    assert state.selected_item().rank == 1
    win.tabs.setCurrentWidget(win.splitter)
    view = _open_inspector(qtbot, win)
    qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Down)
    query = visible[start + 1]
    assert state.selected_query == query
    first = next(item for item in state.results(query) if item.status != "junk")
    assert first.rank == 1 and state.results(query)[0].status == "junk"
    assert win.inspector_ctl.inspector.pair == (query, first.gallery_index)
    qtbot.waitUntil(win.inspector_ctl.is_ready, timeout=60000)
    assert "#1" in view.title.text()
    # The grid shows the same tile selected; the junk tile before it stays in the list.
    qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Escape)
    assert win.grid.currentIndex().row() == state.selected_result
    assert win.grid.model_.data(win.grid.currentIndex()) == "#1"
    assert win.grid.model_.items[0].status == "junk"

    # The sensitivity map of "the selected result" is that of result #1 ...
    win.occlusion.show()
    occ = win.occlusion.controller
    qtbot.waitUntil(lambda: occ.state.image is not None, timeout=20000)
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000):
        occ.compute_sensitivity()
    assert occ.state.sensitivity.gallery_index == first.gallery_index
    assert occ.state.sensitivity.target.startswith("the result at rank 1 ")
    # ... and of a junk tile only when the user picks one, named as such (not "rank 0").
    state.selected_result = 0
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000):
        occ.compute_sensitivity()
    assert "junk" in occ.state.sensitivity.target and "rank 0" not in occ.state.sensitivity.target


def test_an_external_image_is_described_with_the_stages_applied_to_it(qtbot, window, loaded,
                                                                       tmp_path):
    """Under RR+TLift an image without timestamp is ranked by qaconv+rr: so say the header, the
    grid's tooltips, the inspector's title and the CSV."""
    win, state, session = window, window.state, loaded.session
    path = tmp_path / "me.jpg"
    shutil.copy(session.dataset.gallery[4].path, path)
    win.postprocess.rerank.setChecked(True)
    win.postprocess.tlift.setChecked(True)
    qtbot.waitUntil(lambda: state.applied.rerank is not None and state.applied.tlift is not None
                    and not state.busy, timeout=30000)
    count = state.num_queries
    win.controller.add_external_query(str(path))
    qtbot.waitUntil(lambda: state.num_queries == count + 1 and not state.busy
                    and bool(state.results()), timeout=30000)
    query = state.selected_query
    assert state.is_extra(query)
    assert win.header.numbers.text() == "Ranking: qaconv+rr"
    assert "TLift is not applied" in win.header.note_text
    assert "distance under qaconv+rr " in _tooltip(win)
    view = _open_inspector(qtbot, win)
    assert view.title.text().endswith("under qaconv+rr")
    assert "tlift" not in view.title.text()
    qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Escape)
    assert _csv_methods(qtbot, win, tmp_path / "external.csv") == {"qaconv+rr"}
    described = state.describe(query)  # what all of them read
    assert described.method == "qaconv+rr" and not described.identity_known


@pytest.fixture
def occluded(qtbot, window):
    """TLift on (the query's own list: qaconv+tlift), then a square ranked in the occlusion
    panel (an occluded copy: qaconv, no timestamp)."""
    win, state = window, window.state
    session = state.session
    query = next(q for q, s in enumerate(session.dataset.query)
                 if ((session.gallery_pids == s.pid) & (session.gallery_cams != s.cam)).any())
    state.select_query(query)
    win.postprocess.tlift.setChecked(True)
    qtbot.waitUntil(lambda: state.applied.tlift is not None and not state.busy, timeout=30000)
    own = win.header.numbers.text()  # the query's own list, as the header names it
    assert own.startswith("Ranking: qaconv+tlift · AP ")
    win.occlusion.show()
    occ = win.occlusion.controller
    qtbot.waitUntil(lambda: occ.state.image is not None, timeout=20000)
    occ.state.box = (8, 10, 24, 24)
    with qtbot.waitSignal(occ.rank_finished, timeout=30000) as blocker:
        occ.apply_square()
    assert blocker.args == [True]
    return win, query, own


def test_one_description_of_an_occluded_ranking_everywhere(qtbot, occluded, tmp_path):
    win, query, own = occluded
    state = win.state
    # The panel: before and after both named by their method, and the query's own list (the
    # header's numbers before the square) named as the other ranking it is.
    text = win.occlusion.panel.numbers.text()
    assert "both ranked by qaconv:" in text
    assert f"own list, qaconv+tlift, lifted by timestamps: {own.split(' · ', 1)[1]}" in text
    described = state.describe(query)
    override = state.override(query)
    assert described is override.description
    assert (described.method, described.probe) == ("qaconv", "occluded copy")
    assert (described.ap, described.first_hit_rank) == (override.ranking.ap,
                                                       override.ranking.first_hit_rank)
    # Header, results title, tiles, inspector title and CSV: the same words and numbers.
    assert win.header.numbers.text() == f"Ranking: {described.summary()}"
    assert "qaconv of the occluded copy" in win.header.numbers.text()
    assert "ranked alone and without TLift" in win.header.note_text
    assert win.results_title.text() == described.title
    assert "distance under qaconv of the occluded copy " in _tooltip(win)
    assert "vs. the query without occlusion" in _tooltip(win)
    view = _open_inspector(qtbot, win)
    assert view.title.text().endswith("under qaconv of the occluded copy")
    qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Escape)
    assert _csv_methods(qtbot, win, tmp_path / "occluded.csv") == {"qaconv (occluded copy)"}
    before = override.before
    assert before.method == "qaconv" and before.probe
    assert f"AP {before.ap:.3f} → {described.ap:.3f}" in text


def test_the_header_follows_the_list_back_to_the_querys_own(qtbot, occluded):
    win, query, own = occluded
    win.occlusion.panel.reset_button.click()
    assert win.state.override(query) is None
    assert win.header.numbers.text() == own
    assert own == f"Ranking: {win.state.describe(query).summary()}"
    assert win.results_title.text() == "Ranked gallery"
    assert "distance under qaconv+tlift " in _tooltip(win)
    assert grid_gallery_order(win)[0] == int(win.state.ranking(query).order[0])


def test_the_panel_names_the_querys_own_list_only_when_it_is_another_ranking():
    from viewer.occlusion.state import OcclusionOverride, before_after_text
    from viewer.ranking import RankingDescription

    before = RankingDescription("qaconv+rr", 0.763, 1, probe="query, unoccluded")
    after = RankingDescription("qaconv+rr", 0.5, 4, probe="occluded copy")
    override = OcclusionOverride(0, None, None, None, after, before=before)
    text = before_after_text(override, RankingDescription("qaconv+rr+tlift", 1.0, 1))
    assert text.startswith("Unoccluded → occluded, both ranked by qaconv+rr:\nAP 0.763 → 0.500")
    assert text.endswith("(The query's own list, qaconv+rr+tlift, re-ranked with the other "
                         "queries and lifted by timestamps: AP 1.000 · first true match at rank 1.)")
    # Raw, the query's own list is the unoccluded image's: nothing more to name.
    raw = RankingDescription("qaconv", 0.7630001, 1)
    assert "own list" not in before_after_text(override, raw)
