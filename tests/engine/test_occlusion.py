"""engine.explain.occlusion against brute force: fills, previews vs the transforms themselves, the
occluded ranking vs the engine's ranking of the same image, and every sensitivity cell vs
re-scoring with the square at that position one image at a time."""
from __future__ import annotations

import numpy as np
import pytest

from engine.data import read_image_rgb
from engine.data.transforms import Cutout, RandomErasing, RandomOcclusion, resize
from engine.explain.occlusion import (
    augmentation_previews,
    default_square,
    occlude,
    preview_rng,
    rank_change_map,
    rank_occluded,
    sensitivity_map,
    square_boxes,
)
from engine.jobs import Cancelled
from engine.postprocess.pipeline import final_distances


@pytest.fixture(scope="module")
def session(tiny_synth, tmp_path_factory):
    import torch

    from engine.models.config import ModelConfig
    from engine.models.reid import build_model
    from engine.session import Session

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="resnet18", neck=32, height=64, width=32,
                                    pretrained="none")).eval()
    _, dataset = tiny_synth
    s = Session(dataset, model, "tiny-random", device="cpu", batch_size=16,
                cache_dir=tmp_path_factory.mktemp("occ-cache"))
    s.prepare(rerank=True)
    return s


def _query_with_match(session) -> int:
    for q, sample in enumerate(session.dataset.query):
        other_cam = (session.gallery_pids == sample.pid) & (session.gallery_cams != sample.cam)
        if other_cam.any():
            return q
    raise AssertionError("the tiny set has no query with a true match")


def test_occlude_fills_only_the_clipped_box():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(20, 10, 3), dtype=np.uint8)
    inside = np.zeros((20, 10), bool)
    inside[15:20, 7:10] = True  # box (7, 15, 6, 9) clipped at the right and bottom edges
    for fill in ("white", "zeros", "mean", "noise"):
        out = occlude(image, (7, 15, 6, 9), fill)
        np.testing.assert_array_equal(out[~inside], image[~inside])
        region = out[inside]
        if fill == "white":
            assert (region == 255).all()
        elif fill == "zeros":
            assert (region == 0).all()
        elif fill == "mean":
            np.testing.assert_array_equal(region, np.broadcast_to(
                image.reshape(-1, 3).mean(0).astype(np.uint8), region.shape))
        else:
            assert not np.array_equal(region, image[inside])
            np.testing.assert_array_equal(out, occlude(image, (7, 15, 6, 9), "noise"))  # repeatable
    np.testing.assert_array_equal(occlude(image, (30, 30, 5, 5)), image)  # outside: untouched
    with pytest.raises(ValueError, match="unknown fill"):
        occlude(image, (0, 0, 2, 2), "blue")


def test_previews_are_the_training_transforms_for_the_same_seed(tiny_synth):
    _, dataset = tiny_synth
    image = read_image_rgb(dataset.query[0].path)
    for seed in (0, 7, 123):
        previews = augmentation_previews(image, 64, 32, seed=seed, cutout_size=12)
        base = resize(image, 64, 32)
        transforms = [RandomOcclusion(), RandomErasing(p=1.0), Cutout(12)]
        for i, (preview, transform) in enumerate(zip(previews, transforms, strict=True)):
            expected, (top, left, h, w) = transform.apply(base, preview_rng(seed, i))
            assert preview.box == (left, top, w, h)
            np.testing.assert_array_equal(preview.image, expected)
            outside = np.ones(base.shape[:2], bool)
            outside[top:top + h, left:left + w] = False
            np.testing.assert_array_equal(preview.image[outside], base[outside])


def test_square_boxes_cover_every_fitting_corner():
    side, stride = default_square(64)
    assert (side, stride) == (21, 10)
    boxes = square_boxes(128, 64, side, stride)
    expected = []
    y = 0
    while y + side <= 128:
        x = 0
        while x + side <= 64:
            expected.append((x, y, side, side))
            x += stride
        y += stride
    assert boxes == expected


def test_sensitivity_cells_equal_rescoring_each_position(session):
    q = _query_with_match(session)
    image = read_image_rgb(session.dataset.query[q].path)
    gi = int(np.argmax(session.logits["qg"][q]))
    side, stride = 24, 26
    sens = sensitivity_map(session, image, gi, side, stride)
    boxes = square_boxes(*image.shape[:2], side, stride)
    assert sens.size == len(boxes) > 4
    base = session.score_maps(session.maps_for_image(image)[None])[0, gi]
    brute = [base - session.score_maps(session.maps_for_image(occlude(image, b))[None])[0, gi]
             for b in boxes]
    np.testing.assert_allclose(sens.ravel(), brute, rtol=0, atol=1e-3)
    assert np.ptp(sens) > 1e-3  # the square matters somewhere


def test_occluded_ranking_equals_the_engine_ranking_of_that_image(session):
    q = _query_with_match(session)
    image = read_image_rgb(session.dataset.query[q].path)
    box = (4, 30, 40, 40)
    for rerank in (None, {"k1": 5, "k2": 3, "lambda_value": 0.3}):
        result = rank_occluded(session, image, box, "mean", rerank=rerank)
        for img, dist in ((image, result.before), (occlude(image, box, "mean"), result.after)):
            maps = session.maps_for_image(img)[None]
            logits = session.score_maps(maps)
            if rerank is None:
                expected = final_distances(logits)[0]
            else:
                self_logit = session.model.score(maps, maps, device="cpu")
                expected = final_distances(logits, self_logit, session.logits["gg"], rerank=rerank)[0]
            np.testing.assert_allclose(dist, expected, atol=1e-5)
            np.testing.assert_array_equal(np.argsort(dist), np.argsort(expected))
        # Reusing the unoccluded ranking of an earlier call changes nothing.
        again = rank_occluded(session, image, (0, 0, 30, 30), rerank=rerank, before=result)
        np.testing.assert_array_equal(again.before, result.before)
        fresh = rank_occluded(session, image, (0, 0, 30, 30), rerank=rerank)
        np.testing.assert_allclose(again.after, fresh.after, atol=1e-6)
    # Unoccluded, the image ranks as the cached query row does.
    np.testing.assert_allclose(result.before_logits, session.logits["qg"][q], atol=1e-3)


def test_rank_change_cells_equal_brute_force(session):
    q = _query_with_match(session)
    sample = session.dataset.query[q]
    image = read_image_rgb(sample.path)

    def first_hit(img) -> int:
        logits = session.score_maps(session.maps_for_image(img)[None])[0]
        order = np.argsort(final_distances(logits[None])[0])
        rank = 0
        for gi in order:
            same = session.gallery_pids[gi] == sample.pid
            if same and session.gallery_cams[gi] == sample.cam:
                continue  # junk: not counted
            rank += 1
            if same:
                return rank
        raise AssertionError("no true match")

    result = rank_change_map(session, image, sample.pid, sample.cam, 32, 32, fill="zeros")
    assert result.before == first_hit(image)
    brute = [first_hit(occlude(image, b, "zeros")) for b in square_boxes(*image.shape[:2], 32, 32)]
    assert result.ranks.ravel().tolist() == brute
    np.testing.assert_array_equal(result.change, result.ranks - result.before)


def test_cancel_stops_the_sensitivity_map(session):
    image = read_image_rgb(session.dataset.query[0].path)
    progress = []

    def cancel() -> bool:  # asks to stop once the first batch has been reported
        return bool(progress)

    with pytest.raises(Cancelled):
        sensitivity_map(session, image, 0, 8, 4, progress=lambda d, t: progress.append((d, t)),
                        cancel=cancel)
    assert progress and progress[-1][0] < progress[-1][1]  # stopped before the end


def test_rank_change_cell_equals_the_square_ranked_by_hand_with_rerank_and_noise(session):
    """One map cell vs :func:`rank_occluded` of the same box, fill and re-ranking: the manual
    square of the occlusion panel."""
    from engine.evaluation import rank_row

    q = _query_with_match(session)
    sample = session.dataset.query[q]
    image = read_image_rgb(sample.path)
    rr = {"k1": 5, "k2": 3, "lambda_value": 0.3}
    result = rank_change_map(session, image, sample.pid, sample.cam, 24, 20, fill="noise", rerank=rr)
    assert result.ranking == "qaconv+rr"
    boxes = square_boxes(*image.shape[:2], 24, 20)
    labels = (sample.pid, sample.cam, session.gallery_pids, session.gallery_cams)
    for cell in (0, int(np.argmax(result.ranks)), len(boxes) - 1):
        by_hand = rank_occluded(session, image, boxes[cell], "noise", rerank=rr)
        assert rank_row(by_hand.before, *labels).first_hit_rank == result.before
        assert rank_row(by_hand.after, *labels).first_hit_rank == result.ranks.ravel()[cell]
    assert rank_change_map(session, image, sample.pid, sample.cam, 24, 20).ranking == "qaconv"
