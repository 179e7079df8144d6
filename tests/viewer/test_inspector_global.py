"""The match inspector's default heatmap follows the pair, and it explains a global model exactly:
its contributions add up to the session's cosine, or, for a model with no exact split, it says so
and draws nothing."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.viewer.conftest import open_inspector, window_holding


def test_two_results_of_one_query_give_different_default_heatmaps(qtbot, window):
    win = window
    view = open_inspector(qtbot, win, position=0)
    ins = win.inspector_ctl.inspector
    first = np.array(view.heat["probe"].image)
    first_pair = ins.pair
    win.state.selected_result = 1
    qtbot.waitUntil(lambda: ins.pair != first_pair and ins.correspondence is not None, timeout=60000)
    assert ins.pair[0] == first_pair[0]
    second = np.array(view.heat["probe"].image)
    assert ins.kind == "pair" and view.kind.currentData() == "pair"
    assert first.shape == second.shape and not np.allclose(first, second, atol=1e-4)


@pytest.fixture(scope="module")
def global_loaded(tiny_data, tiny_checkpoint, tmp_path_factory):
    """The tiny set ranked by the global baseline on the tiny checkpoint's trunk and neck."""
    from engine.checkpoint import read_tensor_file, save_checkpoint
    from engine.models.config import ModelConfig
    from viewer.tasks import LoadRequest, load_session

    state = read_tensor_file(tiny_checkpoint)
    cfg = dataclasses.replace(ModelConfig.from_dict(state["config"]), method="global")
    path = tmp_path_factory.mktemp("global") / "global.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "epoch": 0,
                           "model": {k: v for k, v in state["model"].items() if not k.startswith("matcher.")}})
    request = LoadRequest(data=tiny_data, checkpoint=str(path), device="cpu",
                          cache_dir=str(tmp_path_factory.mktemp("global-cache")))
    return load_session(request, progress=lambda *a: None, cancel=lambda: False)


@pytest.fixture
def global_window(qtbot, global_loaded):
    with window_holding(qtbot, global_loaded) as win:
        yield win


def test_a_global_model_is_explained_exactly(qtbot, global_window, global_loaded, monkeypatch):
    win = global_window
    session = global_loaded.session
    view = open_inspector(qtbot, win, position=0)
    ins = win.inspector_ctl.inspector
    query, gallery_index = ins.pair
    corr = ins.correspondence
    assert corr.method == "global"
    score = float(session.logits["qg"][query, gallery_index])
    assert corr.logit == pytest.approx(score, abs=1e-5)
    total = (corr.probe_contribution.sum(dtype=np.float64) + corr.gallery_contribution.sum(dtype=np.float64)
             + corr.bias)
    assert total == pytest.approx(score, abs=1e-5)
    # the default heatmap: each query location's pair terms, which alone add up to the cosine
    assert float(np.sum(view.heat["probe"].image, dtype=np.float64)) == pytest.approx(score, abs=1e-5)
    assert "relative" not in [view.kind.itemData(i) for i in range(view.kind.count())]
    assert f"cosine {corr.logit:.3f}" in view.sum_text.text()
    assert f"raw: cosine {corr.logit:.3f}" in view.scores_text.text()
    # lines go to the gallery location with the largest pair term A_i.B_j
    P = np.asarray(session.query_maps[query], np.float64)
    P = P.reshape(P.shape[0], -1)
    G = np.asarray(session.gallery_maps[gallery_index], np.float64).reshape(P.shape)
    np.testing.assert_array_equal(corr.probe_to_gallery, (P.T @ G).argmax(1))
    assert len(view.line_segments()) == min(ins.top_n, P.shape[1])

    # A model whose pooling does not split exactly: a message, no picture.
    from engine.models.reid import ReIDModel

    monkeypatch.setattr(ReIDModel, "has_correspondences", property(lambda self: False))
    session.model  # noqa: B018 (loaded, so the session can ask it)
    win.state.selected_result = 1
    qtbot.waitUntil(lambda: ins.unavailable != "", timeout=60000)
    assert ins.correspondence is None
    assert "No picture" in view.sum_text.text() and "exact" in view.sum_text.text()
    assert view.line_segments() == []
