"""Session.explain_pair: a model whose feature store holds embeddings (an imported global
model) is explained from the pair's two images, exactly; stored 1 x 1 "maps" are never split."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import read_image_rgb
from engine.features import load_input
from engine.models import load_model
from engine.models.importing import import_checkpoint
from engine.session import Session
from tests.engine.test_importing import fastreid_file


@pytest.fixture(scope="module")
def fastreid_session(tiny_synth, tmp_path_factory):
    """A fast-reid BoT file (ResNet-18 trunk, BN neck, random weights) converted at 64 x 32."""
    folder = tmp_path_factory.mktemp("fastreid")
    torch.save(fastreid_file("resnet18", seed=4), folder / "model_final.pth")
    import_checkpoint(folder / "model_final.pth", folder / "m.pt", height=64, width=32)
    model = load_model(folder / "m.pt").eval()
    _, dataset = tiny_synth
    return Session(dataset, model, "fastreid-test", device="cpu", cache_dir=folder / "cache", batch_size=8)


def test_a_pair_of_an_imported_model_is_split_from_its_images(fastreid_session):
    session = fastreid_session
    assert session.stores_embeddings
    session.extract()
    query = session.dataset.query[0].path
    gallery_index = 3
    image = read_image_rgb(query)
    x = torch.stack([load_input(image, session.prep),
                     load_input(session.dataset.gallery[gallery_index].path, session.prep)])
    with torch.no_grad():
        a, b = session.model.features(x).double()
    cosine = float(a @ b / (a.norm() * b.norm()))
    for probe in (query, image):  # a file, or an RGB array (an edited copy of the query)
        corr = session.explain_pair(probe, gallery_index)
        assert corr.method == "global" and corr.probe_contribution.shape == (4, 2)  # 64x32 / 16 (last stride 1)
        total = (corr.probe_contribution.sum(dtype=np.float64)
                 + corr.gallery_contribution.sum(dtype=np.float64) + corr.bias)
        assert corr.logit == pytest.approx(cosine, abs=1e-5)
        assert total == pytest.approx(cosine, abs=1e-5)
        assert "BN neck" in corr.note
    # the stored embeddings [E, 1, 1] have no locations to split
    with pytest.raises(ValueError, match="explain_pair"):
        session.correspondences(session.query_maps[0], gallery_index)


def test_a_model_with_no_exact_split_says_so(fastreid_session, monkeypatch):
    from engine.models.global_model import GlobalModel

    monkeypatch.setattr(GlobalModel, "has_correspondences", property(lambda self: False))
    with pytest.raises(ValueError, match="no exact"):
        fastreid_session.explain_pair(fastreid_session.dataset.query[0].path, 0)
