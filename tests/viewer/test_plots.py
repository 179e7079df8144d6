"""Analysis plots: `evaluate --plots` files, the panel's data against the engine's, sweeps,
clicks (camera pair, sweep point) and exports."""
from __future__ import annotations

import csv
import dataclasses
import sys

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from engine.analysis.plot_csv import PLOT_NAMES, plot_csv
from engine.analysis.plot_data import (
    analyse_stages,
    pair_scores,
    score_histogram,
    settings_key,
    stage_distances,
    tlift_sweeps,
)
from engine.postprocess.params import RerankParams, TLiftParams
from tests.viewer.conftest import assert_no_job_running


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_stage_distances_equal_the_sessions(loaded):
    session = loaded.session
    rr, tl = RerankParams(k1=8, k2=3), TLiftParams(tau=80.0, k=4)
    dists = stage_distances(session, rr, tl)
    assert list(dists) == ["qaconv", "qaconv+rr", "qaconv+tlift", "qaconv+rr+tlift"]
    for (r, t), name in [((None, None), "qaconv"), ((rr, None), "qaconv+rr"),
                         ((None, tl), "qaconv+tlift"), ((rr, tl), "qaconv+rr+tlift")]:
        np.testing.assert_array_equal(dists[name], session.distances(r, t))
    # a known matrix is used as given, not recomputed
    marker = np.zeros_like(dists["qaconv"])
    again = stage_distances(session, None, None, known={settings_key(None, None): marker})
    assert again["qaconv"] is marker


@pytest.mark.slow
def test_evaluate_plots_writes_every_file(tiny_data, tiny_checkpoint, cache_dir, tmp_path,
                                         monkeypatch):
    import cv2

    from engine.__main__ import main
    from engine.evaluation import evaluate
    from engine.session import Session

    out = tmp_path / "plots"
    common = ["--data", tiny_data, "--checkpoint", tiny_checkpoint, "--device", "cpu",
              "--cache-dir", cache_dir]
    # The CLI draws its PNGs without Qt or the viewer: importing either would fail here.
    for module in ("PySide6", "pyqtgraph", "viewer.plots.render"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["evaluate", *common, "--rerank", "--tlift", "--plots", str(out)]) == 0
    monkeypatch.undo()
    for name in PLOT_NAMES:
        assert (out / f"{name}.csv").stat().st_size > 0, name
    for name in ("cmc", "roc", "score_distributions", "camera_pairs", "tlift_sweep"):
        image = cv2.imread(str(out / f"{name}.png"))
        assert image is not None and min(image.shape[:2]) >= 300, name
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20, name

    # cmc.csv: one method per stage, values equal evaluate's CMC of that stage
    session = Session.open(tiny_data, tiny_checkpoint, device="cpu", cache_dir=cache_dir)
    labels = (session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams)
    rows = _rows(out / "cmc.csv")
    assert list(rows[0]) == ["rank", "method", "value"]
    stages = {"qaconv": (None, None), "qaconv+rr": (RerankParams(), None),
              "qaconv+rr+tlift": (RerankParams(), TLiftParams())}
    assert sorted({r["method"] for r in rows}) == sorted(stages)
    for method, (rr, tl) in stages.items():
        cmc = evaluate(session.distances(rr, tl), *labels).cmc
        got = [float(r["value"]) for r in rows if r["method"] == method]
        assert [int(r["rank"]) for r in rows if r["method"] == method] == list(range(1, len(cmc) + 1))
        np.testing.assert_allclose(got, cmc, atol=1e-6)

    # the sweep's rows are the `sweep` command's rows
    assert main(["sweep", *common, "--param", "alpha", "--csv", str(tmp_path / "alpha.csv")]) == 0
    swept = [r for r in _rows(out / "tlift_sweep.csv") if r["parameter"] == "alpha"]
    single = _rows(tmp_path / "alpha.csv")
    assert [float(r["value"]) for r in swept] == [float(r["alpha"]) for r in single]
    np.testing.assert_allclose([float(r["rank1"]) for r in swept],
                               [float(r["rank1"]) for r in single], atol=1e-6)
    np.testing.assert_allclose([float(r["mAP"]) for r in swept],
                               [float(r["mAP"]) for r in single], atol=1e-6)
    assert sum(int(r["is_base"]) for r in swept) == 1


@pytest.fixture
def panel(window, qtbot):
    window.show_plots()
    dock = window.plots_dock
    qtbot.waitUntil(lambda: dock.plots_controller.plots.plots is not None, timeout=20_000)
    yield dock.panel
    dock.shutdown()


def _engine_plots(state):
    session = state.session
    dists = stage_distances(session, state.rerank, state.tlift)
    labels = (session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams)
    return dists, analyse_stages(dists, *labels)


def _wait_refreshed(qtbot, panel, current: str):
    plots = panel.plots
    qtbot.waitUntil(lambda: plots.plots is not None and plots.plots.plots.current == current
                    and not plots.busy, timeout=20_000)


def test_panel_data_equal_the_engines(window, panel, qtbot):
    state = window.state
    dists, want = _engine_plots(state)
    got = panel.plots.plots.plots
    assert [s.name for s in got.stages] == list(dists) and got.current == "qaconv"
    for a, b in zip(got.stages, want.stages, strict=True):
        np.testing.assert_array_equal(a.cmc, b.cmc)
        np.testing.assert_array_equal(a.roc.tpr, b.roc.tpr)
        assert a.roc.at == b.roc.at
        np.testing.assert_array_equal(a.cameras.rank1, b.cameras.rank1)

    # RR on: the panel follows, and its current stage is what the grid ranks by
    state.rerank = RerankParams(k1=10, k2=3)
    state.rerank_on = True
    _wait_refreshed(qtbot, panel, "qaconv+rr")
    current = panel.plots.plots.plots.stage()
    labels = (state.session.query_pids, state.session.gallery_pids, state.session.query_cams,
              state.session.gallery_cams)
    hist = score_histogram(pair_scores(state.distmat, *labels))
    for key, counts in hist.counts.items():
        np.testing.assert_array_equal(current.histogram.counts[key], counts)
    qtbot.waitUntil(lambda: state.metrics is not None, timeout=20_000)  # follows the ranking
    np.testing.assert_array_equal(current.cmc, state.metrics.cmc)
    assert current.mean_ap == state.metrics.mean_ap

    # the selected query's marks are its pairs in the current distances, junk removed
    from viewer.plots.state import query_marks

    q = state.selected_query
    sample = state.session.dataset.query[q]
    true, false = query_marks(state, "all")
    want_true = [1 - state.distmat[q, j] for j, s in enumerate(state.session.dataset.gallery)
                 if s.pid == sample.pid and s.cam != sample.cam]
    want_false = [1 - state.distmat[q, j] for j, s in enumerate(state.session.dataset.gallery)
                  if s.pid != sample.pid]
    np.testing.assert_allclose(np.sort(true), np.sort(want_true), atol=1e-6)
    np.testing.assert_allclose(np.sort(false), np.sort(want_false), atol=1e-6)


def test_hover_shows_values(panel):
    plot = panel.cmc_plot
    panel._hover_cmc(plot.vb.mapViewToScene(QPointF(3.0, 50.0)))
    stage = panel.data.stages[0]
    assert panel.cmc.readout.text().startswith("rank 3:")
    assert f"{100 * stage.cmc[2]:.1f}%" in panel.cmc.readout.text()


def test_camera_cell_click_filters_queries_and_results(window, panel):
    cams = panel.data.stage().cameras
    i, j = np.argwhere(cams.num_queries > 0)[0]
    qc, gc = int(cams.query_cams[i]), int(cams.gallery_cams[j])
    panel.ctl.select_camera_pair(qc, gc)
    state = window.state
    assert state.filter_cam == qc and state.filter_gallery_cam == gc
    assert all(state.query_sample(q).cam == qc for q in state.visible_queries())
    assert state.query_sample(state.selected_query).cam == qc
    results = state.results()
    assert results and all(state.session.dataset.gallery[r.gallery_index].cam == gc
                           for r in results)
    assert window.display.camera.currentData() == gc


def test_sweeps_equal_the_engines_and_a_click_sets_the_parameter(window, panel, qtbot, tmp_path):
    state = window.state
    values = {"tau": [50.0, 100.0], "sigma": [200.0, 300.0], "k": [5, 10], "alpha": [0.2, 0.5]}
    worker = panel.ctl.run_sweeps(values)
    assert worker is not None
    qtbot.waitUntil(lambda: panel.plots.sweep is not None, timeout=20_000)
    session = state.session
    from viewer.plots.state import session_labels

    # Without RR on, TLift lifts each query's relative similarity, as the pipeline does.
    want = tlift_sweeps(session.distances(None, None), **session_labels(session), values=values,
                        base=dataclasses.asdict(state.tlift), relative=True)
    assert panel.plots.sweep.sweeps == want
    assert panel.ctl.sweeps_current()

    rows = _rows_text(panel.plot_data_csv("tlift_sweep"))
    assert len(rows) == 8 and {r["parameter"] for r in rows} == set(values)

    panel.ctl.set_tlift_parameter("k", 5.0)
    assert state.tlift.k == 5 and isinstance(state.tlift.k, int) and state.tlift_on
    assert not panel.ctl.sweeps_current()
    _wait_refreshed(qtbot, panel, "qaconv+tlift")

    png = tmp_path / "sweep.png"
    panel.export("tlift_sweep", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    panel.export("cmc", str(tmp_path / "cmc.csv"))
    assert (tmp_path / "cmc.csv").read_text() == plot_csv(panel.data, "cmc")
    with pytest.raises(ValueError, match="is a folder"):
        panel.export("cmc", str(tmp_path))


def _rows_text(text: str):
    return list(csv.DictReader(text.splitlines()))


def test_closing_the_window_stops_the_panels_jobs(window, qtbot):
    window.plots_button.click()
    dock = window.plots_dock
    qtbot.waitUntil(lambda: dock.plots_controller.plots.plots is not None, timeout=20_000)
    dock.plots_controller.run_sweeps()
    window.close()
    assert_no_job_running(window.controller)


def test_rr_plus_tlift_caches_rr_alone_with_the_same_numbers(window, qtbot):
    from viewer.state import PostSettings

    state, controller = window.state, window.controller
    state.rerank_on = True
    state.tlift_on = True
    worker = controller.recompute()
    qtbot.waitUntil(lambda: state.applied == state.requested_settings(), timeout=20_000)
    assert worker is not None
    session = state.session
    np.testing.assert_array_equal(state.distmat, session.distances(state.rerank, state.tlift))
    distmat, _ = controller.cache.get(PostSettings(state.rerank, None))
    np.testing.assert_array_equal(distmat, session.distances(state.rerank, None))
    state.tlift_on = False  # RR alone is now instant: no job
    assert controller.recompute() is None and state.applied == PostSettings(state.rerank, None)
    # Its metrics follow the ranking (evaluated once it is shown) and are kept with it.
    qtbot.waitUntil(lambda: state.metrics is not None, timeout=20_000)
    assert state.metrics.mean_ap == session.evaluate(distmat).mean_ap
    assert controller.cache.get(PostSettings(state.rerank, None))[1] is state.metrics


def test_camera_readout_follows_the_stage_and_hovering_keeps_the_layout(window, panel, qtbot):
    from PySide6.QtWidgets import QApplication

    panel.resize(1024, 640)
    QApplication.processEvents()
    tiles = list(panel.tiles.values())
    before, least = [t.geometry() for t in tiles], [t.minimumSizeHint() for t in tiles]
    cams = panel.data.stage().cameras
    i, j = np.argwhere(cams.num_queries > 0)[0]
    panel._hover_cams(panel.cams_plot.vb.mapViewToScene(QPointF(j + 0.5, i + 0.5)))
    assert f"rank-1 {100 * cams.rank1[i, j]:.1f}%" in panel.cams.readout.text()
    panel.cams.readout.setText("a read-out far longer than any tile is wide " * 8)
    panel.sweep.readout.setText("another one, as long " * 12)
    QApplication.processEvents()
    # Hovering does not re-lay out the panel: no read-out changes what a tile needs.
    assert [t.minimumSizeHint() for t in tiles] == least
    assert [t.geometry() for t in tiles] == before
    panel._hover_cams(panel.cams_plot.vb.mapViewToScene(QPointF(j + 0.5, i + 0.5)))

    # A sweep point clicked (tau = 300): the stage changes, the read-out follows its cell.
    panel.ctl.set_tlift_parameter("tau", 300.0)
    _wait_refreshed(qtbot, panel, "qaconv+tlift")
    now = panel.data.stage().cameras
    assert panel.data.stage().name == "qaconv+tlift"
    i2 = list(now.query_cams).index(cams.query_cams[i])
    j2 = list(now.gallery_cams).index(cams.gallery_cams[j])
    assert (f"rank-1 {100 * now.rank1[i2, j2]:.1f}%, mAP {100 * now.mean_ap[i2, j2]:.1f}%"
            in panel.cams.readout.text())


def test_roc_legend_lies_off_the_curves(panel):
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    legend, box = panel.roc_legend, panel.roc_plot.vb
    heading, *names = [label.text for _sample, label in legend.items]
    assert heading == f"TPR at FPR {panel.fpr.currentData():g}:"
    assert len(names) == len(panel.data.stages)
    for name, stage in zip(names, panel.data.stages, strict=True):
        assert name == f"{stage.name}  {100 * stage.roc.at[panel.fpr.currentData()]:.1f}%"
    assert legend.isVisible() and not panel.roc_plot.legend.isVisible()
    assert not legend.sceneBoundingRect().intersects(box.sceneBoundingRect())
