"""The Qt-free state: events, filters and sorting, rankings and navigation."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from engine.data.samples import Sample
from engine.postprocess.params import TLiftParams
from tests.viewer.conftest import reversed_override
from viewer.state import ExtraQuery, PostSettings, ViewerState


@pytest.fixture
def state(loaded):
    s = ViewerState()
    s.raw_distmat = loaded.raw_distmat
    s.session = loaded.session
    s.set_distances(PostSettings(), loaded.raw_distmat, loaded.raw_metrics)
    return s


def test_events_fire_once_per_real_change(state):
    seen = []
    state.events.top_k.connect(seen.append)
    state.events.distmat.connect(lambda new, old: seen.append((new is old, new.shape)))
    state.top_k = 30
    state.top_k = 30
    state.top_k = 40
    # Arrays compare by identity: a new matrix is a change even when its values are the same.
    distmat = state.distmat
    state.set_distances(state.applied, distmat, state.metrics)
    state.set_distances(state.applied, distmat.copy(), state.metrics)
    assert seen == [30, 40, (False, distmat.shape)]
    other = ViewerState()
    other.extra_queries += (None,)
    assert ViewerState().extra_queries == ()  # defaults are not shared


def test_listeners_of_a_batch_see_every_assignment_of_it(state, loaded):
    """set_distances and select_query emit after storing all they change, in a fixed order."""
    seen, distmat = [], loaded.raw_distmat.copy()
    for name in ("distmat", "applied", "metrics", "selected_query", "selected_result"):
        state.events[name].connect(
            lambda *_a, name=name: seen.append((name, state.applied, state.distmat is distmat,
                                                state.selected_query, state.selected_result)))
    state.selected_result = 2
    seen.clear()
    settings = PostSettings(tlift=TLiftParams())
    state.set_distances(settings, distmat, None)
    assert [s[0] for s in seen] == ["distmat", "applied", "metrics"]
    assert all(s[1:3] == (settings, True) for s in seen)
    query = state.selected_query + 1
    first = next(i for i, it in enumerate(state.results(query)) if it.status != "junk")
    state.selected_result = first + 1
    seen.clear()
    state.select_query(query)
    assert [s[0] for s in seen] == ["selected_query", "selected_result"]
    assert all(s[3:] == (query, first) for s in seen)


def test_the_states_import_neither_qt_nor_torch():
    """Every view's state is plain data: it loads (and is testable) without Qt or torch."""
    code = ("import sys, viewer.state, viewer.inspector.state, viewer.occlusion.state, "
            "viewer.plots.state; print(sorted(m.split('.')[0] for m in sys.modules "
            "if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'torch')))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": root}).stdout
    assert out.strip() == "[]"


def test_filters_match_a_plain_loop(state, loaded):
    queries = loaded.session.dataset.query
    cam = queries[0].cam
    state.filter_cam = cam
    assert sorted(state.visible_queries()) == [i for i, s in enumerate(queries) if s.cam == cam]
    state.filter_cam = None
    pid = queries[3].pid
    state.filter_pid = f"{pid:04d}"
    assert sorted(state.visible_queries()) == [i for i, s in enumerate(queries) if s.pid == pid]
    state.filter_pid = ""
    part = os.path.basename(queries[5].path)[4:9]
    state.filter_name = part
    expected = [i for i, s in enumerate(queries) if part.lower() in os.path.basename(s.path).lower()]
    assert sorted(state.visible_queries()) == expected
    state.filter_name = ""
    assert len(state.visible_queries()) == len(queries)


def test_sort_orders(state, loaded):
    queries = loaded.session.dataset.query
    state.sort_key = "file"
    names = [os.path.basename(queries[i].path) for i in state.visible_queries()]
    assert names == sorted(names)
    state.sort_key = "identity"
    keys = [(queries[i].pid, queries[i].cam) for i in state.visible_queries()]
    assert keys == sorted(keys)
    state.sort_key = "ap"
    aps = [state.query_ap(i) for i in state.visible_queries()]
    finite = [a for a in aps if not math.isnan(a)]
    assert finite == sorted(finite)                       # worst first
    assert all(math.isnan(a) for a in aps[len(finite):])  # no true match: last
    # The AP shown is the evaluation's.
    assert np.allclose(np.array(aps[:len(finite)]),
                       np.sort(loaded.raw_metrics.ap[loaded.raw_metrics.valid]))


def test_results_follow_the_distance_order_and_junk_mode(state, loaded):
    session = loaded.session
    for query in range(state.num_dataset_queries):
        row = loaded.raw_distmat[query]
        order = np.argsort(row.astype(np.float32))
        state.top_k = 7
        state.junk_mode = "grey"
        items = state.results(query)
        assert [it.gallery_index for it in items] == list(order[:7])
        sample = session.dataset.query[query]
        gallery = session.dataset.gallery
        # Ranks as the protocol counts them: junk not counted (and shown without a number).
        expected, counted = [], 0
        for g in order[:7]:
            junk = gallery[g].pid == sample.pid and gallery[g].cam == sample.cam
            counted += not junk
            expected.append(0 if junk else counted)
        assert [it.rank for it in items] == expected
        for it in items:
            g = gallery[it.gallery_index]
            want = ("false" if g.pid != sample.pid else "junk" if g.cam == sample.cam else "true")
            assert it.status == want
            assert it.movement is None  # no post-processing applied
        state.junk_mode = "hide"
        kept = [g for g in order if not (gallery[g].pid == sample.pid and gallery[g].cam == sample.cam)]
        assert [it.gallery_index for it in state.results(query)] == kept[:7]


def _counted_ranks(order, junk) -> dict:
    """gallery index -> 1-based rank in ``order`` with the ``junk`` gallery indices skipped."""
    ranks, counted = {}, 0
    for g in order:
        if int(g) not in junk:
            counted += 1
            ranks[int(g)] = counted
    return ranks


def test_movement_is_counted_in_the_ranks_the_tiles_show(state, loaded):
    """Issue 18.6: an arrow is (rank raw - rank now), junk counted in neither, so "#1 ▼1" cannot
    appear on the result that was #1 raw just because junk moved ahead of it."""
    rng = np.random.default_rng(0)
    noisy = loaded.raw_distmat + rng.normal(0, 0.01, loaded.raw_distmat.shape).astype(np.float32)
    state.set_distances(PostSettings(rerank=state.rerank), noisy, None)
    state.top_k = state.max_top_k
    gallery, differs = loaded.session.dataset.gallery, 0
    for query in range(state.num_dataset_queries):
        sample = state.query_sample(query)
        junk = {g for g, s in enumerate(gallery) if s.pid == sample.pid and s.cam == sample.cam}
        raw = _counted_ranks(np.argsort(loaded.raw_distmat[query]), junk)
        now = _counted_ranks(np.argsort(noisy[query]), junk)
        raw_position = {int(g): p for p, g in enumerate(np.argsort(loaded.raw_distmat[query]))}
        for pos, item in enumerate(state.results(query)):
            if item.gallery_index in junk:
                assert item.rank == 0 and item.movement is None   # not ranked: no arrow
                continue
            assert item.rank == now[item.gallery_index]
            assert item.movement == raw[item.gallery_index] - item.rank
            differs += item.movement != raw_position[item.gallery_index] - pos
    assert differs  # the set has junk that moves: the old (position) arrows were different


def test_selection_and_stepping_skip_junk(state):
    """Issue 18.7: a query opens on its first ranked result and Left/Right step over junk;
    junk stays in the list and can still be selected (a click), and stepping goes on from it."""
    def counted(query):
        return [i for i, it in enumerate(state.results(query)) if it.status != "junk"]

    queries = [q for q in range(state.num_dataset_queries) if state.results(q)[0].status == "junk"]
    assert queries, "the tiny set has a query whose nearest image is junk"
    query = queries[0]
    state.select_query(query)
    assert state.selected_result == counted(query)[0] > 0
    assert state.selected_item().rank == 1
    visited = [state.selected_result]
    while len(visited) < 12:
        state.step_result(+1)
        visited.append(state.selected_result)
    assert visited == counted(query)[:12]
    for _ in range(11):
        state.step_result(-1)
    assert state.selected_result == visited[0]
    state.step_result(-1)
    assert state.selected_result == visited[0]  # no ranked result before the first: stays
    junk = [i for i, it in enumerate(state.results(query)) if it.status == "junk"]
    state.selected_result = junk[0]              # a click on a junk tile selects it
    assert state.selected_item().status == "junk"
    state.step_result(+1)
    assert state.selected_result == min(i for i in counted(query) if i > junk[0])
    # Past the tiles shown, more are shown and the step lands on a ranked one.
    state.top_k = 3
    state.selected_result = counted(query)[0]
    for _ in range(4):
        state.step_result(+1)
    assert state.top_k > 3 and state.selected_item().rank == 5


def test_navigation_steps_through_the_visible_order(state):
    state.sort_key = "identity"
    visible = state.visible_queries()
    state.select_query(visible[0])
    state.step_query(+1)
    assert state.selected_query == visible[1]
    state.step_query(-1)
    state.step_query(-1)
    assert state.selected_query == visible[0]  # clamped at the top
    state.step_result(+1)
    state.step_result(+1)
    assert state.selected_item().rank == 3
    state.step_query(+1)
    assert state.selected_item().rank == 1  # a new query starts at its first ranked result


def test_an_override_replaces_one_querys_list_only(state, loaded):
    a = next(q for q in range(state.num_dataset_queries) if state.ranking(q).first_hit_rank > 0)
    b = a + 1
    own = {q: [(i.gallery_index, i.distance) for i in state.results(q)] for q in (a, b)}
    override = reversed_override(state, loaded, a)
    events = []
    state.events.overrides.connect(events.append)
    state.set_override(a, override)
    state.set_override(a, override)  # the same again: no event
    assert len(events) == 1 and state.override(a) is override and state.override(b) is None
    shown = state.results(a)
    # The override's order: its distances ascending, its own values on the tiles.
    assert [i.distance for i in shown] == pytest.approx(sorted(override.dist_row)[:state.top_k])
    assert all(i.distance == override.dist_row[i.gallery_index] and i.score == 1.0 for i in shown)
    assert [(i.gallery_index, i.distance) for i in state.results(b)] == own[b]
    # Navigation works on the list shown: the first true match of the farthest-first list.
    state.select_query(a)
    assert state.select_first_true_match()
    item = state.selected_item()
    assert item.status == "true" and item.rank == override.ranking.first_hit_rank
    assert state.top_k >= item.rank  # grown to show it
    state.set_override(a, None)
    assert state.overrides == {} and len(events) == 2
    assert [(i.gallery_index, i.distance) for i in state.results(a)][:len(own[a])] == own[a]


def test_describe_names_the_image_and_the_stages_applied_to_it(state, loaded):
    """One description per list on screen: a dataset query under TLift is qaconv+tlift; an image
    without timestamp is ranked without TLift and named so; an override describes itself and
    the query's own list stays reachable."""
    settings = PostSettings(tlift=TLiftParams())
    state.set_distances(settings, loaded.raw_distmat, loaded.raw_metrics)  # values do not matter here
    q = next(q for q in range(state.num_dataset_queries) if state.ranking(q).first_hit_rank > 0)
    own = state.describe(q)
    ranking = state.ranking(q)
    assert (own.method, own.probe, own.versus) == ("qaconv+tlift", "", "no post-processing")
    assert own.summary() == (f"qaconv+tlift · AP {ranking.ap:.3f} · first true match at rank "
                             f"{ranking.first_hit_rank}")
    logits = loaded.session.logits["qg"][0]
    extra = ExtraQuery(Sample("outside.jpg", None, None, None), logits, np.zeros((1, 1), np.float32),
                       rows={PostSettings().key(): loaded.raw_distmat[0]})
    state.extra_queries = (extra,)
    external = state.describe(state.num_dataset_queries)
    assert external.method == "qaconv" and "TLift is not applied" in external.note
    assert not external.identity_known and external.numbers() == "identity unknown: no AP"
    override = reversed_override(state, loaded, q)
    state.set_override(q, override)
    assert state.describe(q) is override.description
    assert state.describe(q).label == "qaconv of the list shown"
    assert state.describe(q, own=True) == own
