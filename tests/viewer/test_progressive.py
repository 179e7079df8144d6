"""Progressive launch: the window shows the raw ranking before q-q / g-g are scored."""
from __future__ import annotations

import dataclasses

from tests.viewer.conftest import assert_no_job_running, grid_gallery_order


def test_window_paints_before_rerank_blocks_exist(qtbot, load_request):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.show()
    state = win.state
    seen = []

    def painted(distmat) -> None:
        if distmat is not None and not seen:
            session = state.session
            seen.append(set(session.logits) | set(session.graphs))

    state.events.distmat.connect(painted)
    statuses = []
    state.events.status.connect(lambda status: statuses.append(status.last_step))
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000) as blocker:
        win.start_load(dataclasses.replace(load_request, rerank_blocks=True))
    assert blocker.args == [True]
    assert seen[0] == {"qg"}                     # first paint: q-g only
    assert grid_gallery_order(win)               # the grid shows results
    # The status bar said what was pending (the background job may be done already).
    assert any("pending: q-q, g-g" in text for text in statuses)
    # Then the background job scores q-q and g-g and the status bar stops saying so.
    qtbot.waitUntil(lambda: {"qq", "gg"} <= set(state.session.logits) and not state.busy, timeout=60000)
    qtbot.waitUntil(lambda: "pending" not in state.status.last_step, timeout=5000)
    win.close()
    assert_no_job_running(win.controller)


def test_lazy_blocks_are_scored_when_rerank_is_switched_on(qtbot, load_request):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000):
        win.start_load(dataclasses.replace(load_request, rerank_blocks=False))
    session = win.state.session
    qtbot.wait(200)
    assert not win.state.busy and "gg" not in session.logits   # nothing scored in the background
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None, timeout=60000)
    assert {"qq", "gg"} <= set(session.logits)
    win.close()
    assert_no_job_running(win.controller)


def test_external_query_reranks_on_the_shortlist_graph(loaded):
    """An image opened as a query is re-ranked on the gallery's shortlist graph; with every
    pair listed that is the exhaustive re-ranking."""
    import numpy as np

    from engine.postprocess.params import RerankParams
    from engine.session import Session
    from viewer.state import PostSettings
    from viewer.tasks import score_external

    session = loaded.session
    full = Session(session.dataset, session.model, session.model_digest, device="cpu",
                   cache_dir=session.cache_dir, shortlist=len(session.dataset.gallery))
    short = Session(session.dataset, session.model, session.model_digest, device="cpu",
                    cache_dir=session.cache_dir, shortlist=4)
    path = session.dataset.gallery[3].path
    settings = [PostSettings(rerank=RerankParams(k1=4, k2=2))]
    args = dict(progress=lambda *a: None, cancel=lambda: False)
    exhaustive = score_external(session, path, settings, **args).row(settings[0])
    np.testing.assert_array_equal(score_external(full, path, settings, **args).row(settings[0]), exhaustive)
    row = score_external(short, path, settings, **args).row(settings[0])
    assert "gg" in short.graphs and row.shape == exhaustive.shape and np.isfinite(row).all()
    assert np.argmin(row) == np.argmin(exhaustive) == 3   # the image itself comes first


def test_two_stage_is_chosen_when_exhaustive_scoring_would_be_slow(loaded, tmp_path, monkeypatch):
    from engine import shortlist
    from engine.session import Session
    from viewer import tasks

    session = loaded.session
    assert tasks.choose_shortlist(session, "auto") == (None, "")     # exhaustive q-g is cached
    assert tasks.choose_shortlist(session, None) == (None, "")
    assert tasks.choose_shortlist(session, 7)[0] == 7
    fresh = Session(session.dataset, session.model, session.model_digest, device="cpu",
                    cache_dir=tmp_path)
    fresh.query_maps, fresh.gallery_maps = session.query_maps, session.gallery_maps
    assert tasks.choose_shortlist(fresh, "auto") == (None, "")       # tiny: seconds at most
    monkeypatch.setattr(tasks, "AUTO_SHORTLIST_SECONDS", 0.0)
    monkeypatch.setattr(shortlist, "DEFAULT_SHORTLIST", 2)
    # K: the smallest of 2, 4, 8, ... whose recall, measured on sampled queries, loses no matches.
    ranks = shortlist.sampled_ranks(fresh)
    size = len(fresh.gallery_maps)
    monkeypatch.setattr(shortlist, "RECALL_NEEDED", shortlist.recall_at(ranks, 4))
    k, note = tasks.choose_shortlist(fresh, "auto")
    assert k == (2 if shortlist.recall_at(ranks, 2) == shortlist.RECALL_NEEDED else 4) < size
    assert "exhaustive scoring would take" in note
    monkeypatch.setattr(shortlist, "RECALL_NEEDED", 1.01)  # every K below the gallery loses some
    k, note = tasks.choose_shortlist(fresh, "auto")
    assert k is None and "would lose matches" in note


def test_tlift_toggle_does_not_wait_for_the_background_blocks(qtbot, load_request, monkeypatch):
    """The q-q / g-g job runs on its own thread: TLift (no re-ranking) applies while it is busy
    scoring a block (and holding the session's scoring lock)."""
    import threading

    from engine.blocks import BlockCache
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    release, started = threading.Event(), threading.Event()
    real = BlockCache._score_block

    def slow_block(self, name, *args):
        if name in ("qq", "gg"):
            started.set()
            release.wait(60)
        return real(self, name, *args)

    monkeypatch.setattr(BlockCache, "_score_block", slow_block)
    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000):
        win.start_load(dataclasses.replace(load_request, rerank_blocks=True))
    qtbot.waitUntil(started.is_set, timeout=10000)
    win.postprocess.tlift.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.tlift is not None, timeout=60000)
    assert not release.is_set() and win.controller.jobs.is_busy("prefetch")  # still running
    release.set()
    qtbot.waitUntil(lambda: not win.controller.jobs.is_busy("prefetch"), timeout=10000)
    win.close()
    assert_no_job_running(win.controller)


def test_rr_tlift_from_the_windows_rr_matrix_equals_computing_both(loaded):
    import numpy as np

    from engine.postprocess.params import RerankParams, TLiftParams
    from viewer.state import PostSettings
    from viewer.tasks import compute_distances

    session = loaded.session
    args = dict(progress=lambda *a: None, cancel=lambda: False)
    both = PostSettings(rerank=RerankParams(), tlift=TLiftParams())
    full = compute_distances(session, both, [], **args)
    rr = compute_distances(session, both.without_tlift(), [], **args).distmat
    kept = rr.copy()
    lifted = compute_distances(session, both, [], reranked=rr, **args)
    np.testing.assert_array_equal(lifted.distmat, full.distmat)
    np.testing.assert_array_equal(rr, kept)          # the window's matrix is not modified
    np.testing.assert_array_equal(full.rerank_only[1], rr)


def test_a_cached_shortlist_is_reused_without_timing_exhaustive_scoring(loaded, tmp_path, monkeypatch):
    import engine.shortlist as shortlist
    from engine.session import Session
    from viewer import tasks

    session = loaded.session
    monkeypatch.setattr(shortlist, "DEFAULT_SHORTLIST", 3)
    monkeypatch.setattr(shortlist, "RECALL_NEEDED", 0.0)      # K = 3 loses nothing, as measured
    fresh = Session(session.dataset, session.model, session.model_digest, device="cpu",
                    cache_dir=tmp_path, shortlist=3)
    fresh.query_maps, fresh.gallery_maps = session.query_maps, session.gallery_maps
    fresh.score(("qg",))                                       # cached under its two-stage key
    shortlist.sampled_ranks(fresh)                             # and the recall measured

    def never(*_a, **_k):
        raise AssertionError("exhaustive scoring was timed although a two-stage block is cached")

    monkeypatch.setattr(shortlist, "estimate_exhaustive_seconds", never)
    k, note = tasks.choose_shortlist(fresh, "auto")
    assert k == 3 and "two-stage" in note


def test_a_toggle_shows_the_ranking_first_and_its_metrics_after(qtbot, window, monkeypatch):
    """Evaluating every query is most of a Market-size toggle: the grid does not wait for it."""
    import threading

    from viewer import controller as controller_module

    state, session = window.state, window.state.session
    release = threading.Event()
    real = controller_module.evaluate_distances

    def slow_evaluation(*args, **kwargs):
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(controller_module, "evaluate_distances", slow_evaluation)
    state.tlift_on = True
    qtbot.waitUntil(lambda: state.applied.tlift is not None, timeout=30_000)
    assert state.metrics is None and window.metrics.isVisible()    # ranking shown, metrics pending
    release.set()
    qtbot.waitUntil(lambda: state.metrics is not None, timeout=30_000)
    assert state.metrics.mean_ap == session.evaluate(state.distmat).mean_ap
    assert state.metrics is window.controller.cache.get(state.applied)[1]


def test_a_large_set_is_painted_before_it_is_evaluated(qtbot, load_request, monkeypatch):
    from viewer import tasks
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    monkeypatch.setattr(tasks, "EVALUATE_BEFORE_PAINT", 0)   # every set counts as large
    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.show()
    state = win.state
    painted = []
    state.events.distmat.connect(lambda d: painted.append(state.metrics) if d is not None else None)
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000):
        win.start_load(load_request)
    assert painted and painted[0] is None                     # the first paint came first
    qtbot.waitUntil(lambda: state.metrics is not None and state.raw_metrics is not None, timeout=30000)
    assert state.raw_metrics is state.metrics
    assert state.metrics.mean_ap == state.session.evaluate(state.raw_distmat).mean_ap
    win.close()
