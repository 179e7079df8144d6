"""Comparing two models in the viewer: model B's ranking and ranks against the engine's, the
panel's lists against a query-by-query count, clicks, settings followed, and File > Open model
asking for the input size of a converted file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.evaluation import AP_TIE, rank_row
from tests.viewer.conftest import assert_no_job_running


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory):
    """Another random small model (the fixture's settings, other weights)."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.models.config import ModelConfig
    from engine.models.reid import build_model

    torch.manual_seed(1)
    cfg = ModelConfig(arch="resnet18", neck=32, height=64, width=32, pretrained="none")
    path = tmp_path_factory.mktemp("second") / "model.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "model": build_model(cfg).state_dict()})
    return str(path)


def _b_alone(loaded, checkpoint, rerank=None):
    """Model B's distances and metrics from a session of its own."""
    from engine.session import Session

    session = Session.open(loaded.session.dataset, checkpoint, device="cpu",
                           cache_dir=loaded.session.cache_dir)
    dist = session.distances(rerank)
    return session, dist, session.evaluate(dist)


def test_second_model_ranks_as_its_own_session(loaded, second_checkpoint):
    from viewer.compare.state import SecondRanks, score_second_model
    from viewer.state import PostSettings

    result = score_second_model(second_checkpoint, loaded.session, PostSettings(),
                                progress=lambda *a: None, cancel=lambda: False)
    session, dist, metrics = _b_alone(loaded, second_checkpoint)
    np.testing.assert_array_equal(result.distmat, dist)
    np.testing.assert_array_equal(result.metrics.ap, metrics.ap)
    ranks = SecondRanks(result)
    for query in (0, len(dist) // 2, len(dist) - 1):
        sample = session.dataset.query[query]
        row = rank_row(dist[query], sample.pid, sample.cam, session.gallery_pids,
                       session.gallery_cams)
        for position in (0, 3, len(row.order) - 1):
            want = max(int(row.protocol_rank[position]), 0)      # junk: 0
            assert ranks.rank(query, int(row.order[position])) == want
    assert ranks.rank(len(dist), 0) is None                      # an external query: no list


@pytest.mark.slow
def test_compare_panel_lists_ranks_clicks_and_follows_settings(qtbot, window, loaded,
                                                               second_checkpoint):
    from viewer.widgets.result_grid import rank_labels

    win, state = window, window.state
    dock = win.show_compare()
    ctl, panel = dock.compare_controller, dock.panel
    with qtbot.waitSignal(ctl.finished, timeout=120_000) as finished:
        win.compare_with_model(second_checkpoint)
    assert finished.args == [True]
    _, _, metrics = _b_alone(loaded, second_checkpoint)
    a_ap, b_ap = state.metrics.ap, metrics.ap
    valid = ~np.isnan(a_ap) & ~np.isnan(b_ap)
    a_wins = {int(q) for q in np.flatnonzero(valid & (a_ap > b_ap + AP_TIE))}
    b_wins = {int(q) for q in np.flatnonzero(valid & (b_ap > a_ap + AP_TIE))}
    listed = [{panel.a_list.item(i).data(panel_role()) for i in range(panel.a_list.count())},
              {panel.b_list.item(i).data(panel_role()) for i in range(panel.b_list.count())}]
    assert listed == [a_wins, b_wins]
    assert len(panel.points.data) == int(valid.sum())
    assert f"A wins {len(a_wins)}, B wins {len(b_wins)}" in panel.summary.text()
    # Every tile shows both ranks: A's own, and B's from B's ranking.
    ranks = state.second_ranks
    for item in state.results():
        assert rank_labels(state, item) == (
            f"A #{item.rank}" if item.rank else "A junk",
            f"B #{ranks.rank(state.selected_query, item.gallery_index)}"
            if ranks.rank(state.selected_query, item.gallery_index) else "B junk")
    query = state.selected_query
    b_ranking = ranks.ranking(query)
    assert (f"Model B: AP {metrics.ap[query]:.3f} · first true match at rank "
            f"{metrics.first_hit_rank[query]}") in win.header.numbers.text()
    assert b_ranking.first_hit_rank == metrics.first_hit_rank[query]
    # A click on a list entry shows that query in the window, even when a filter hid it.
    entry = panel.b_list.item(0) if panel.b_list.count() else panel.a_list.item(0)
    query = entry.data(panel_role())
    state.filter_name = "no such file"
    panel._list_clicked(entry)
    assert state.selected_query == query and state.filter_name == ""
    assert list(panel.marker.getData()[0]) == [pytest.approx(a_ap[query])]
    # Re-ranking on: B follows, and the tiles show B's ranks only once they are for +RR.
    state.rerank_on = True
    qtbot.waitUntil(lambda: state.applied.rerank is not None, timeout=120_000)
    qtbot.waitUntil(lambda: state.second_ranks is not None and not ctl.compare.busy,
                    timeout=120_000)
    assert ctl.compare.result.settings == state.applied
    _, _, rr_metrics = _b_alone(loaded, second_checkpoint, state.applied.rerank)
    np.testing.assert_array_equal(ctl.compare.result.metrics.ap, rr_metrics.ap)
    ctl.close()
    assert state.second_ranks is None and panel.points.data.size == 0
    assert rank_labels(state, state.results()[0])[1] == ""
    assert_no_job_running(win.controller)


def panel_role():
    from viewer.compare.view import QUERY_ROLE

    return QUERY_ROLE


def test_parse_size():
    from viewer.widgets.input_size_dialog import parse_size

    assert parse_size("384 x 128") == (384, 128) == parse_size("384x128") == parse_size("384,128")
    assert parse_size("0 x 128") is None and parse_size("big") is None and parse_size("") is None


@pytest.fixture
def converter(monkeypatch, tmp_path, tiny_checkpoint):
    """A stand-in for i20's converters: a ``*.pth.tar`` file converts (a copy of the tiny
    checkpoint) only with an input size, else NeedsInputSize with two candidates."""
    from engine.checkpoint import CheckpointError
    from engine.models import importing

    class NeedsInputSize(CheckpointError):
        def __init__(self, message, candidates):
            super().__init__(message)
            self.candidates = candidates

    monkeypatch.setattr(importing, "NeedsInputSize", NeedsInputSize, raising=False)
    calls = []

    def convert(src, cache_dir=None, *, height=None, width=None, **_):
        calls.append((height, width))
        if height is None:
            raise NeedsInputSize("8 locations: the input size is ambiguous", [(64, 32), (32, 64)])
        out = tmp_path / "converted" / "model.pt"
        out.parent.mkdir(exist_ok=True)
        for suffix in (".pt", ".json"):
            shutil.copy(str(tiny_checkpoint).replace(".pt", suffix), out.with_suffix(suffix))
        return out

    monkeypatch.setattr(importing, "native_checkpoint", convert)
    foreign = tmp_path / "checkpoint.pth.tar"
    foreign.write_bytes(b"their file")
    return foreign, calls


def test_open_model_asks_for_the_input_size_then_loads(qtbot, window, load_request, converter,
                                                       monkeypatch):
    import viewer.main_window as main_window

    foreign, calls = converter
    asked = []

    def answer(_parent, needs):
        asked.append(needs.candidates)
        return needs.candidates[0]

    monkeypatch.setattr(main_window, "ask_input_size", answer)
    win = window
    with qtbot.waitSignal(win.controller.load_finished, timeout=120_000,
                          check_params_cb=lambda ok: ok):
        win.start_load(win._request(data=load_request.data, checkpoint=str(foreign),
                                    cache_dir=load_request.cache_dir, device="cpu"))
    assert asked == [((64, 32), (32, 64))] and calls == [(None, None), (64, 32)]
    status = win.state.status
    assert status.last_step.startswith("converted model") and "checkpoint.pth.tar" in status.detail
    assert win.controller.last_request.height == 64
    assert_no_job_running(win.controller)


def test_compare_with_a_foreign_model_asks_for_its_size(qtbot, window, converter, monkeypatch):
    import viewer.main_window as main_window

    foreign, calls = converter
    monkeypatch.setattr(main_window, "ask_input_size", lambda _p, needs: needs.candidates[0])
    win = window
    dock = win.show_compare()
    results = []
    dock.compare_controller.finished.connect(results.append)
    win.compare_with_model(str(foreign))
    qtbot.waitUntil(lambda: results[-1:] == [True], timeout=120_000)
    assert results == [False, True] and calls == [(None, None), (64, 32)]
    assert dock.compare_controller.compare.result.note.startswith("checkpoint.pth.tar: ")
    assert_no_job_running(win.controller)


@pytest.mark.slow
def test_launcher_compare_screenshot(launch, data_args, second_checkpoint, tmp_path):
    out = tmp_path / "compare.png"
    assert launch(*data_args, "--compare", second_checkpoint, "--no-rerank-cache",
                  "--screenshot", out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Model B is one of the run's inputs: the screenshot may not replace it.
    assert launch(*data_args, "--compare", second_checkpoint, "--screenshot",
                  second_checkpoint, "--force") == 2
