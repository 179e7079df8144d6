"""The match inspector explains an imported global model (torchreid OSNet, whose feature store
holds embeddings, no maps) exactly: the pair's split is computed from its two images in the
background, for a dataset query and for an external image, and its contributions add up to the
pair's cosine; the tiles call the number a cosine."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tests.engine.torchreid_layout import seeded_state, torchreid_checkpoint
from tests.viewer.conftest import open_inspector, window_holding


@pytest.fixture(scope="module")
def osnet_loaded(tiny_data, tmp_path_factory):
    """The tiny set ranked by a torchreid OSNet x0.25 file (random weights, randomised BN),
    converted at 64 x 32 (what the viewer does with File > Open model...)."""
    from engine.models.importing import import_checkpoint
    from viewer.tasks import LoadRequest, load_session

    folder = tmp_path_factory.mktemp("osnet")
    torch.save(torchreid_checkpoint(seeded_state("osnet_x0_25", seed=3)), folder / "osnet.pth.tar")
    import_checkpoint(folder / "osnet.pth.tar", folder / "osnet.pt", height=64, width=32)
    request = LoadRequest(data=tiny_data, checkpoint=str(folder / "osnet.pt"), device="cpu",
                          cache_dir=str(tmp_path_factory.mktemp("osnet-cache")))
    return load_session(request, progress=lambda *a: None, cancel=lambda: False)


@pytest.fixture
def osnet_window(qtbot, osnet_loaded):
    with window_holding(qtbot, osnet_loaded) as win:
        yield win


def _cosine_of_images(session, query_path: str, gallery_index: int) -> float:
    """The model's own cosine of the two images' embeddings (float32, no feature store)."""
    from engine.features import load_input

    x = torch.stack([load_input(query_path, session.prep),
                     load_input(session.dataset.gallery[gallery_index].path, session.prep)])
    with torch.no_grad():
        a, b = session.model.features(x).double()
    return float(a @ b / (a.norm() * b.norm()))


def _check_exact(corr, cosine: float) -> None:
    total = (corr.probe_contribution.sum(dtype=np.float64) + corr.gallery_contribution.sum(dtype=np.float64)
             + corr.bias)
    assert corr.logit == pytest.approx(cosine, abs=1e-5)
    assert total == pytest.approx(corr.logit, abs=1e-5)
    from engine.explain.inspect import pair_heatmap

    for side in ("probe", "gallery"):  # each side's pair terms alone add up to the cosine too
        assert pair_heatmap(corr, side).sum(dtype=np.float64) == pytest.approx(corr.logit, abs=1e-5)


def test_an_imported_osnet_pair_is_split_exactly_from_its_images(qtbot, osnet_window, osnet_loaded, tmp_path):
    win, session = osnet_window, osnet_loaded.session
    assert session.stores_embeddings and session.query_maps.shape[2:] == (1, 1)
    view = open_inspector(qtbot, win, position=0)
    ins = win.inspector_ctl.inspector
    query, gallery_index = ins.pair
    corr = ins.correspondence
    assert corr is not None and corr.method == "global", ins.unavailable
    assert corr.probe_contribution.shape == (4, 2)  # the trunk's 64 x 32 / 16 locations, not 1 x 1
    _check_exact(corr, _cosine_of_images(session, session.dataset.query[query].path, gallery_index))
    # the feature store keeps float16 embeddings: the tile's cosine agrees to their precision
    assert corr.logit == pytest.approx(float(session.logits["qg"][query, gallery_index]), abs=2e-3)
    text = view.sum_text.text()
    assert f"cosine {corr.logit:.3f}" in text and "exact given the pair's ReLU masks" in text
    assert len(view.line_segments()) > 0

    # An external image opened as query is explained from its own file.
    path = tmp_path / "me.jpg"
    shutil.copy(session.dataset.gallery[4].path, path)
    before = win.state.num_queries
    win.controller.add_external_query(str(path))
    qtbot.waitUntil(lambda: win.state.num_queries == before + 1 and not win.state.busy, timeout=60000)
    win.inspector_ctl.close()
    open_inspector(qtbot, win, position=1)
    query, gallery_index = ins.pair
    assert win.state.is_extra(query) and ins.correspondence is not None
    _check_exact(ins.correspondence, _cosine_of_images(session, str(path), gallery_index))
    qtbot.waitUntil(win.inspector_ctl.is_ready, timeout=60000)


def test_an_imported_model_with_no_exact_split_gets_a_message(qtbot, osnet_window, monkeypatch):
    from engine.models.global_model import GlobalModel

    monkeypatch.setattr(GlobalModel, "has_correspondences", property(lambda self: False))
    win = osnet_window
    view = open_inspector(qtbot, win, position=1)
    ins = win.inspector_ctl.inspector
    assert ins.correspondence is None and "exact" in ins.unavailable
    assert "No picture" in view.sum_text.text() and view.line_segments() == []
    assert win.state.error is None  # said in the panel, not reported as a failure


def test_tiles_name_the_raw_score_of_each_method():
    from viewer.formatting import format_method_value, method_value_label

    assert method_value_label("global") == "cosine" and method_value_label("qaconv") == "logit"
    assert method_value_label("global+rr") == method_value_label("qaconv+rr+tlift") == "dist"
    assert format_method_value("cosine", 0.98765) == "cosine 0.988"
    assert format_method_value("logit", 3.14159) == "logit 3.14"
