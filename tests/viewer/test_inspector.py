"""The match inspector on the tiny synthetic set: what it draws equals the engine's numbers,
recomputed here from the feature maps; hover/click, stepping, Esc, PNG export, an external query,
RR on; and the grid's rank numbering and selection (one numbering, selection follows the image).
"""
from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QThread
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from viewer.inspector.state import InspectorState


def _open(qtbot, win, position: int = 1):
    """Select the result tile at ``position`` and press Enter; wait for the local matches."""
    win.tabs.setCurrentWidget(win.splitter)
    win.state.selected_result = position
    win.grid.setFocus()
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    assert win.inspector_ctl.inspector.open
    view = win.inspector.build()
    ins, jobs = win.inspector_ctl.inspector, win.controller.jobs
    try:
        qtbot.waitUntil(lambda: win.inspector_ctl.is_ready(), timeout=30000)
    except Exception:
        raise AssertionError(f"not ready: corr {ins.correspondence is not None}, busy {win.state.busy!r}, "
                             f"scores {[s.text() for s in ins.scores]}, jobs {[w.name for w in jobs.workers]}, "
                             f"error {win.state.error}") from None
    return view


def _press(qtbot, win, key) -> None:
    """A key press where the user's would go: the focused widget, else the window."""
    qtbot.keyClick(QApplication.focusWidget() or win, key)


def _head(session):
    weight, bias = session.model.matcher.folded_head()
    return weight.numpy().astype(np.float64), float(bias), float(session.model.matcher.bn.running_mean[0])


def _brute_force(session, probe_map, gallery_index):
    """a, b, argmaxes and contributions written out from the maps (docs/arithmetic.md 2.7)."""
    P = np.asarray(probe_map, np.float32).reshape(probe_map.shape[0], -1).astype(np.float64)
    G = np.asarray(session.gallery_maps[gallery_index], np.float32).reshape(P.shape[0], -1).astype(np.float64)
    sim = P.T @ G
    return sim.max(axis=1), sim.max(axis=0), sim.argmax(axis=1), sim.argmax(axis=0)


def _pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    return np.frombuffer(image.constBits(), np.uint8).reshape(
        image.height(), image.bytesPerLine())[:, :image.width() * 3].reshape(image.height(), -1, 3)


def test_enter_opens_the_inspector_and_it_draws_the_engines_numbers(qtbot, window, loaded):
    win = window
    app_thread = QApplication.instance().thread()
    threads = []
    for name in (f.name for f in dataclasses.fields(InspectorState)):
        win.inspector_ctl.inspector.events[name].connect(
            lambda *_a: threads.append(QThread.currentThread() is app_thread))
    view = _open(qtbot, win, position=1)
    assert win.tabs.currentWidget() is win.inspector and view.isVisible()
    session = loaded.session
    query, gallery_index = win.state.selected_query, win.state.selected_item().gallery_index
    ins = win.inspector_ctl.inspector
    assert ins.pair == (query, gallery_index)
    corr = ins.correspondence
    # Contributions add up to the logit, which equals the scoring path's logit of the pair.
    total = corr.probe_contribution.sum() + corr.gallery_contribution.sum() + corr.bias
    assert total == pytest.approx(corr.logit, abs=1e-4)
    assert corr.logit == pytest.approx(float(session.logits["qg"][query, gallery_index]), abs=1e-4)

    a, b, p2g, g2p = _brute_force(session, session.query_maps[query], gallery_index)
    w, c, mu = _head(session)
    h, wd = corr.probe_heatmap.shape
    # Heatmaps shown: by default the pair's logit on each location, then similarity and both
    # contribution kinds.
    rel_a, rel_b = (w * (a - mu)).reshape(h, wd), (w * (b - mu)).reshape(h, wd)
    pair = rel_a.ravel().copy()
    np.add.at(pair, g2p, rel_b.ravel())
    np.testing.assert_allclose(view.heat["probe"].image, pair.reshape(h, wd), atol=1e-4)
    ins.kind = "similarity"
    np.testing.assert_allclose(view.heat["probe"].image, a.reshape(h, wd), atol=1e-5)
    np.testing.assert_allclose(view.heat["gallery"].image, b.reshape(h, wd), atol=1e-5)
    ins.kind = "contribution"
    np.testing.assert_allclose(view.heat["probe"].image, (w * a).reshape(h, wd), atol=1e-4)
    np.testing.assert_allclose(view.heat["gallery"].image, (w * b).reshape(h, wd), atol=1e-4)
    lo, hi = view.colorbar.levels()
    assert lo == pytest.approx(-hi) and hi == pytest.approx(np.abs(np.r_[w * a, w * b]).max(), rel=1e-4)
    assert (w * a).sum() + (w * b).sum() + c == pytest.approx(corr.logit, abs=1e-4)
    ins.kind = "relative"
    np.testing.assert_allclose(view.heat["gallery"].image, (w * (b - mu)).reshape(h, wd), atol=1e-4)
    # Lines: the top n query locations by w*(a - mu), each to its best gallery location.
    ins.top_n = 3
    image_h, image_w = session.prep.height, session.prep.width

    def centre(index, x0):
        row, col = divmod(int(index), wd)
        return x0 + (col + 0.5) * image_w / wd, (row + 0.5) * image_h / h

    top = sorted(range(h * wd), key=lambda s: -w[s] * (a[s] - mu))[:3]
    gx = image_w + view.layout_.gap
    expected = [(*centre(s, 0), *centre(p2g[s], gx)) for s in top]
    np.testing.assert_allclose(view.line_segments(), expected, atol=1e-4)
    # The threshold mode: the most similar half of the gallery's locations, whatever their range.
    ins.line_side, ins.line_mode, ins.threshold_share = "gallery", "threshold", 0.5
    want = set(np.argsort(-b, kind="stable")[:(h * wd + 1) // 2].tolist())
    segments = view.line_segments()
    assert len(segments) == len(want)
    assert f"top 50% (≥ {np.sort(b)[::-1][len(want) - 1]:.3f})" == view.threshold_label.text()
    assert {(round(x0, 3), round(y0, 3)) for x0, y0, _x1, _y1 in segments} == {
        (round(centre(r, gx)[0], 3), round(centre(r, gx)[1], 3)) for r in want}
    ins.line_mode = "off"
    assert view.line_segments() == []
    # The band bars are the relative contributions summed over the thirds of the map's rows.
    bands = np.zeros(3)
    for row in range(h):
        bands[row * 3 // h] += (w * (a - mu)).reshape(h, wd)[row].sum() + (w * (b - mu)).reshape(h, wd)[row].sum()
    np.testing.assert_allclose(ins.bands()["total"], bands, atol=1e-4)
    np.testing.assert_allclose(view.bars.opts["width"], np.abs(bands), atol=1e-4)
    assert f"{corr.logit:.3f}" in view.sum_text.text()
    assert threads and all(threads), "inspector state changed off the GUI thread"


def test_hover_lights_up_the_match_and_click_pins_it(qtbot, window, loaded):
    win = window
    view = _open(qtbot, win, position=0)
    ins = win.inspector_ctl.inspector
    corr = ins.correspondence
    view.hover_scene_pos(view.scene_pos_of("probe", 3))
    assert ins.hover == ("probe", 3)
    target = int(corr.probe_to_gallery[3])
    assert view.focus_rects[1].isVisible()
    x, y, w, h = view.layout_.cell_rect("gallery", target)
    rect = view.focus_rects[1].rect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((x, y, w, h))
    assert f"{float(corr.probe_heatmap.ravel()[3]):.3f}" in view.focus_text.text()
    # The gallery side works the same way; a click pins, and the pin wins over hovering.
    view.click_scene_pos(view.scene_pos_of("gallery", 1))
    assert ins.pinned == ("gallery", 1)
    view.hover_scene_pos(view.scene_pos_of("probe", 0))
    assert ins.focus().side == "gallery" and ins.focus().target == int(corr.gallery_to_probe[1])
    assert "pinned" in view.focus_text.text()
    view.click_scene_pos(view.scene_pos_of("gallery", 1))
    assert ins.pinned is None
    view.hover_scene_pos(view.vb.mapViewToScene(QPointF(-50.0, -50.0)))
    assert ins.hover is None and not view.focus_rects[0].isVisible()


def test_stepping_through_results_and_queries_and_esc_back_to_the_grid(qtbot, window):
    win = window
    _open(qtbot, win, position=win.state.default_result())
    ins = win.inspector_ctl.inspector
    items = [item for item in win.state.results() if item.status != "junk"]  # junk is stepped over
    _press(qtbot, win, Qt.Key.Key_Right)
    assert ins.pair == (win.state.selected_query, items[1].gallery_index)
    win.inspector.view.next_result.click()
    assert ins.pair[1] == items[2].gallery_index
    win.inspector.view.prev_result.click()
    assert ins.pair[1] == items[1].gallery_index
    first_query = win.state.selected_query
    _press(qtbot, win, Qt.Key.Key_Down)
    assert win.state.selected_query != first_query
    assert ins.pair == (win.state.selected_query, win.state.selected_item().gallery_index)
    assert win.state.selected_item().rank == 1
    qtbot.waitUntil(lambda: ins.correspondence is not None, timeout=30000)
    win.inspector.view.prev_query.click()
    assert ins.pair[0] == first_query
    # Right past the last tile shows more results, as scrolling to the end does.
    win.state.top_k = 2
    win.state.selected_result = 1
    rank = win.state.selected_item().rank
    _press(qtbot, win, Qt.Key.Key_Right)
    assert win.state.top_k > 2 and win.state.selected_item().rank == rank + 1
    _press(qtbot, win, Qt.Key.Key_Escape)
    assert not ins.open and win.tabs.currentWidget() is win.splitter


def test_png_export_writes_a_non_blank_image(qtbot, window, tmp_path):
    win = window
    view = _open(qtbot, win, position=0)
    target = tmp_path / "out" / "match.png"
    target.parent.mkdir()
    assert view.export_png(str(target))
    image = QImage(str(target))
    assert not image.isNull() and image.width() > 600
    pixels = _pixels(image)
    assert len(np.unique(pixels.reshape(-1, 3)[::5], axis=0)) > 200 and pixels.std() > 20
    assert [p.name for p in target.parent.iterdir()] == ["match.png"]  # no temporary file left
    # An unwritable place: no file, a message, the window still fine.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not view.export_png(str(blocker / "match.png"))


def test_inspector_for_an_external_query_and_with_rerank_on(qtbot, window, loaded, tmp_path):
    win = window
    session = loaded.session
    path = tmp_path / "me.jpg"
    shutil.copy(session.dataset.gallery[4].path, path)
    before = win.state.num_queries
    win.controller.add_external_query(str(path))
    qtbot.waitUntil(lambda: win.state.num_queries == before + 1 and not win.state.busy, timeout=30000)
    view = _open(qtbot, win, position=2)
    ins = win.inspector_ctl.inspector
    query, gi = ins.pair
    assert win.state.is_extra(query)
    extra = win.state.extra_queries[0]
    assert ins.correspondence.logit == pytest.approx(float(extra.logits[gi]), abs=1e-4)
    assert "external image" in view.pair_text.text()
    scores = {s.method: s for s in ins.scores}
    assert scores["raw"].rank == 3 and "timestamp" in scores["+RR+TLift"].note
    assert scores["+RR"].value is not None  # computed in the background for the inspector
    # Re-ranking on: the inspector keeps the pair, and its +RR rank is the tile's rank.
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and not win.state.busy, timeout=30000)
    qtbot.waitUntil(lambda: win.inspector_ctl.is_ready(), timeout=30000)
    assert ins.pair == (query, gi)
    item = win.state.selected_item()
    assert item.gallery_index == gi
    assert {s.method: s for s in ins.scores}["+RR"].rank == item.rank
    assert f"#{item.rank}" in view.title.text()


def test_one_rank_numbering_in_header_tiles_csv_and_inspector(qtbot, window, loaded, tmp_path):
    win = window
    state = win.state
    state.top_k = state.max_top_k
    gallery = loaded.session.dataset.gallery
    checked = 0
    for query in state.visible_queries():
        ranking = state.ranking(query)
        if ranking.first_hit_rank < 1:
            continue
        first_true = int(np.flatnonzero(ranking.status == "true")[0])
        if not ranking.is_junk[:first_true].any() and query != state.visible_queries()[-1]:
            continue  # prefer a query with junk ranked before its first true match
        state.select_query(query)
        header_rank = ranking.first_hit_rank
        assert f"first true match at rank {header_rank}" in win.header.numbers.text()
        assert state.select_first_true_match()
        item = state.selected_item()
        sample, q = gallery[item.gallery_index], state.query_sample(query)
        assert item.status == "true" and item.rank == header_rank
        assert win.grid.model_.data(win.grid.model_.index(state.selected_result)) == f"#{header_rank}"
        # Junk tiles carry no number; hiding them changes no rank.
        assert all(it.rank == 0 for it in state.results() if it.status == "junk")
        state.junk_mode = "hide"
        assert [it.rank for it in state.results()][:5] == [1, 2, 3, 4, 5][:len(state.results())]
        assert state.selected_item().gallery_index == item.gallery_index  # selection follows
        state.junk_mode = "grey"
        path = tmp_path / f"q{query}.csv"
        win.controller.export(str(path), all_queries=False, top_k=None)
        qtbot.waitUntil(lambda p=path: p.is_file() and not state.busy, timeout=20000)
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        row = next(r for r in rows if r["gallery"] == sample.path)
        assert int(row["rank"]) == header_rank and row["match"] == "true"
        assert all(r["rank"] == "" for r in rows if r["match"] == "junk")
        _open(qtbot, win, position=state.selected_result)
        assert f"#{header_rank}" in win.inspector.view.title.text()
        scores = {s.method: s for s in win.inspector_ctl.inspector.scores}
        assert scores["raw"].rank == header_rank
        assert q.pid == sample.pid
        checked += 1
        break
    assert checked


def test_selection_follows_the_image_across_toggles(qtbot, window):
    win = window
    state = win.state
    state.top_k = 24
    state.selected_result = 5
    chosen = state.selected_item().gallery_index
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: state.applied.rerank is not None and not state.busy, timeout=30000)
    assert state.selected_item().gallery_index == chosen
    assert win.grid.currentIndex().row() == state.selected_result
    state.junk_mode = "hide"
    item = state.selected_item()
    assert item is not None and item.gallery_index == chosen
    state.top_k = 3
    assert state.selected_result <= 2          # out of the list: the last tile
    state.top_k = 24
    win.postprocess.rerank.setChecked(False)
    qtbot.waitUntil(lambda: state.applied.rerank is None and not state.busy, timeout=30000)
    state.selected_result = 4
    chosen = state.selected_item().gallery_index
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: state.applied.rerank is not None and not state.busy, timeout=30000)
    assert state.selected_item().gallery_index == chosen


def test_launcher_screenshot_of_the_inspector(loaded, data_args, tmp_path, launch, capsys):
    target = tmp_path / "inspector.png"
    assert launch(*data_args, "--screenshot", target, "--inspect", "2") == 0
    pixels = _pixels(QImage(str(target)))
    assert pixels.shape[1] >= 800 and len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200
    with pytest.raises(SystemExit) as exit_:
        launch("--inspect", "1")
    assert exit_.value.code == 2 and "--screenshot" in capsys.readouterr().err


def test_hover_tooltip_describes_the_cell_and_the_line_under_the_pointer(qtbot, window):
    from viewer.inspector.state import nearest_segment

    win = window
    view = _open(qtbot, win, position=0)
    ins = win.inspector_ctl.inspector
    ins.kind, ins.line_mode, ins.line_side, ins.top_n = "similarity", "top", "both", 6
    corr = ins.correspondence
    rel = {side: corr.relative_contribution(side).ravel() for side in ("probe", "gallery")}
    # Over a cell: that cell's numbers, as the side panel shows them for it.
    for side, heat in (("probe", corr.probe_heatmap), ("gallery", corr.gallery_heatmap)):
        for index in (0, 5, heat.size - 1):
            view.hover_scene_pos(view.scene_pos_of(side, index))
            text = view.describe_at(view.scene_pos_of(side, index)).splitlines()[0]
            row, col = divmod(index, heat.shape[1])
            name = "query" if side == "probe" else "gallery"
            assert text.startswith(f"{name} row {row}, col {col} →")
            assert f"similarity {heat.ravel()[index]:.3f}" in text
            assert f"{rel[side][index]:+.3f}" in text
            assert f"similarity {heat.ravel()[index]:.3f}" in view.focus_text.text()
    # In the gap between the images: a line only where the pointer is on it.
    lines = ins.lines()
    segments = [(view.vb.mapViewToScene(QPointF(x0, y0)), view.vb.mapViewToScene(QPointF(x1, y1)))
                for x0, y0, x1, y1 in view.line_segments()]
    flat = [(a.x(), a.y(), b.x(), b.y()) for a, b in segments]
    gap_x = view.vb.mapViewToScene(QPointF(view.layout_.image_w + view.layout_.gap / 2, 0)).x()
    for (a, b), line in zip(segments, lines, strict=True):
        t = (gap_x - a.x()) / (b.x() - a.x())
        on = QPointF(gap_x, a.y() + t * (b.y() - a.y()))
        if nearest_segment(flat, on.x(), on.y())[0] == lines.index(line):
            assert "line: " in view.describe_at(on) and f"{line.similarity:.3f}" in view.describe_at(on)
    top = min(min(a.y(), b.y()) for a, b in segments)
    bottom = max(max(a.y(), b.y()) for a, b in segments)
    off = [QPointF(gap_x, y) for y in np.linspace(top, bottom, 200)
           if nearest_segment(flat, gap_x, y)[1] > 8]
    assert off and all(view.describe_at(p) == "" for p in off)   # inside their box, off the lines
