"""How faithful is each heatmap of the match inspector? The deletion test on the demo set.

Usage::

    python benchmarks/bench_deletion.py [--cache-dir DIR] [--pairs N] [--models qaconv,global]
                                        [--global-checkpoint FILE] [--csv FILE]

For each model, ``N`` true and ``N`` false top-1 pairs of the demo set (synthetic B's test split,
generated under ``DIR/demo/B`` when absent; each query's best-ranked gallery image, same identity
and camera left out as the evaluation protocol does), drawn at random (seed 0). For each pair and
each heatmap, the query's map locations are removed in the order the heatmap ranks them, a tenth
at a time, by filling their cells with the demo set's mean colour (``engine.explain.deletion``);
the pair's score is recorded after each step. Printed: the mean area under each curve (lower =
the score fell faster = more faithful) with its standard error, and the mean score at 0, 50 and
100 % removed. Every order of a pair shares both end points, so the areas compare directly;
a random order is the reference.

Heatmaps (query side):

- QAConv: ``similarity`` (the best-match cosines ``a``, the inspector's default until now),
  ``contribution`` (``w*a``), ``relative`` (``w*(a-mu)``), ``pair`` (the pair's whole relative
  logit carried onto the query: ``w*(a-mu)`` plus the ``w*(b-mu)`` of the gallery locations that
  matched each query location), ``sensitivity`` (the project's occlusion sensitivity map, default
  square, mean-colour fill, carried onto the map cells), ``random``.
- global (the baseline, cosine of averaged unit-norm maps): ``similarity`` (cosine of the
  largest pair term's locations), ``contribution`` (the exact split, docs/arithmetic.md 2.9),
  ``sensitivity``, ``random``. Its relative split is the contribution itself.

The global model: ``--global-checkpoint`` (a ``method="global"`` checkpoint), else the demo
checkpoint's trunk and neck ranked as the global baseline (no matcher; same maps, so they are not
extracted twice). Not a timing benchmark: no baseline ratio is printed.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

STEPS = 10
KINDS = {"qaconv": ("similarity", "contribution", "relative", "pair", "sensitivity", "random"),
         "global": ("similarity", "contribution", "sensitivity", "random")}


def demo_data(cache_dir: Path) -> Path:
    root = cache_dir / "demo" / "B"
    if not (root / "query").is_dir():
        from engine.data.synthetic import generate

        generate(root, domain="B", seed=0, num_train_ids=0, workers=1)
    return root


def global_from_demo(checkpoint: Path, out: Path) -> Path:
    """The demo checkpoint's trunk and neck as a global-baseline checkpoint (matcher dropped)."""
    import dataclasses

    import torch

    from engine.checkpoint import read_tensor_file, save_checkpoint
    from engine.models.config import ModelConfig

    if out.is_file():
        return out
    state = read_tensor_file(checkpoint)
    cfg = dataclasses.replace(ModelConfig.from_dict(state["config"]), method="global")
    weights = {k: v for k, v in state["model"].items() if not k.startswith("matcher.")}
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    save_checkpoint(out, {"config": cfg.to_dict(), "model": weights})
    return out


def top1_pairs(scores: np.ndarray, session, pairs: int, seed: int) -> list[tuple[int, int, bool]]:
    """``pairs`` true and ``pairs`` false (query, top-1 gallery index, is_true), at random."""
    qp, qc = session.query_pids, session.query_cams
    gp, gc = session.gallery_pids, session.gallery_cams
    junk = (qp[:, None] == gp[None]) & (qc[:, None] == gc[None])
    best = np.where(junk, -np.inf, scores).argmax(1)
    true = gp[best] == qp
    rng = np.random.default_rng(seed)
    out = []
    for flag in (True, False):
        qs = np.flatnonzero(true == flag)
        qs = np.sort(rng.choice(qs, size=min(pairs, len(qs)), replace=False))
        out += [(int(q), int(best[q]), flag) for q in qs]
    return out


def heatmaps(method: str, corr, sens_cells: np.ndarray) -> dict[str, np.ndarray]:
    """Each heatmap of the query side ``[H, W]`` (the random order is drawn separately)."""
    maps = {"similarity": corr.probe_heatmap, "contribution": corr.probe_contribution,
            "sensitivity": sens_cells}
    if method == "qaconv":
        from engine.explain.inspect import pair_heatmap

        maps["relative"] = corr.relative_contribution("probe")
        maps["pair"] = pair_heatmap(corr)
    return maps


def pair_rows(method: str, session, pair: tuple[int, int, bool], colour, rng) -> list[dict]:
    """The deletion curve of every heatmap of one pair (one backbone pass over all its images)."""
    from engine.data import read_image_rgb
    from engine.data.transforms import resize
    from engine.explain.deletion import cells_from_squares, deletion_auc, deletion_images, order_of
    from engine.explain.occlusion import resolve_square, sensitivity_map

    q, g, flag = pair
    prep = session.prep
    map_shape = tuple(session.gallery_maps.shape[2:])
    image = resize(read_image_rgb(session.dataset.query[q].path), prep.height, prep.width)
    side, stride = resolve_square(prep.width, None, None)
    sens = sensitivity_map(session, image, g, side, stride, fill="mean")
    cells = cells_from_squares(sens, side, stride, map_shape, (prep.height, prep.width))
    corr = session.correspondences(session.maps_for_images([image])[0], g)
    orders = {k: order_of(m) for k, m in heatmaps(method, corr, cells).items()}
    orders["random"] = rng.permutation(map_shape[0] * map_shape[1])
    kinds = KINDS[method]
    images = [image]  # 0 % removed, shared
    for k in kinds:
        images += deletion_images(image, orders[k], map_shape, colour, STEPS)[1:-1]
    images.append(deletion_images(image, orders["random"], map_shape, colour, STEPS)[-1])
    values = session.score_maps(session.maps_for_images(images), [g])[:, 0].astype(np.float64)
    start, end, inner = values[0], values[-1], values[1:-1].reshape(len(kinds), STEPS - 1)
    rows = []
    for k, mid in zip(kinds, inner, strict=True):
        curve = np.concatenate([[start], mid, [end]])
        rows.append({"model": method, "query": q, "gallery": g, "pair": "true" if flag else "false",
                     "heatmap": k, "auc": deletion_auc(curve),
                     **{f"s{i}": float(v) for i, v in enumerate(curve)}})
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| model | pairs | heatmap | AUC (lower = more faithful) | AUC scaled to 1 → 0 | "
             "score at 0 / 50 / 100 % removed |",
             "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r["model"] for r in rows):
        for flag in ("true", "false"):
            sel = [r for r in rows if r["model"] == method and r["pair"] == flag]
            if not sel:
                continue
            n = len({(r["query"], r["gallery"]) for r in sel})
            for k in KINDS[method]:
                auc = np.array([r["auc"] for r in sel if r["heatmap"] == k])
                if not auc.size:
                    continue
                mid = np.mean([r[f"s{STEPS // 2}"] for r in sel if r["heatmap"] == k])
                s0 = np.mean([r["s0"] for r in sel if r["heatmap"] == k])
                s1 = np.mean([r[f"s{STEPS}"] for r in sel if r["heatmap"] == k])
                se = auc.std(ddof=1) / np.sqrt(auc.size) if auc.size > 1 else float("nan")
                # the mean curve scaled so that it starts at 1 and ends at 0: comparable across
                # models whose scores have different ranges (random order ~0.5)
                scaled = (auc.mean() - s1) / (s0 - s1)
                lines.append(f"| {method} | {n} {flag} | {k} | {auc.mean():.4f} ± {se:.4f} | {scaled:.3f} | "
                             f"{s0:.3f} / {mid:.3f} / {s1:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: the project's)")
    parser.add_argument("--pairs", type=int, default=200, help="true and false pairs per model (each)")
    parser.add_argument("--models", default="qaconv,global")
    parser.add_argument("--global-checkpoint", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="write every curve to this CSV file, pair by pair")
    parser.add_argument("--summarise", metavar="CSV", default=None,
                        help="only print the table of a CSV written by an earlier run")
    args = parser.parse_args(argv)
    if args.summarise:
        summarise(args.summarise)
        return

    from engine.data import read_image_rgb
    from engine.explain.deletion import mean_colour
    from engine.session import Session
    from engine.utils import default_cache_dir

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    demo_ckpt = ROOT / "viewer" / "demo" / "model.pt"
    data = demo_data(cache_dir)
    qs = Session.open(str(data), demo_ckpt, device="cpu", cache_dir=cache_dir)
    qs.extract()
    paths = [s.path for s in qs.dataset.query + qs.dataset.gallery]
    colour = mean_colour(read_image_rgb(p) for p in paths)
    print(f"demo set: {len(qs.dataset.query)} queries x {len(qs.dataset.gallery)} gallery; "
          f"fill = dataset mean colour {np.round(colour, 1).tolist()}", flush=True)
    tasks = []
    for method in args.models.split(","):
        if method == "qaconv":
            qs.score(("qg",))
            session, scores = qs, qs.logits["qg"]
        elif method == "global":
            if args.global_checkpoint:
                session = Session.open(str(data), args.global_checkpoint, device="cpu", cache_dir=cache_dir)
                session.extract()
            else:
                ckpt = global_from_demo(demo_ckpt, cache_dir / "bench-deletion" / "global-from-demo.pt")
                session = Session.open(str(data), ckpt, device="cpu", cache_dir=cache_dir)
                session.query_maps, session.gallery_maps = qs.query_maps, qs.gallery_maps
            scores = session.model.score(session.query_maps, session.gallery_maps, device="cpu")
        else:
            raise SystemExit(f"unknown model {method!r}: qaconv or global")
        chosen = top1_pairs(np.asarray(scores, np.float32), session, args.pairs, args.seed)
        true = [p for p in chosen if p[2]]
        false = [p for p in chosen if not p[2]]
        # true and false alternate, so that a run stopped early is balanced
        mixed = [p for pair in zip(true, false, strict=False) for p in pair]
        mixed += true[len(false):] + false[len(true):]
        tasks.append([(method, session, p) for p in mixed])
    # the models alternate too
    order = [t for group in zip(*tasks, strict=False) for t in group]
    order += [t for ts in tasks for t in ts[min(map(len, tasks)):]]
    rng = np.random.default_rng(args.seed + 1)
    rows: list[dict] = []
    writer, handle = None, None
    if args.csv:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        handle = open(args.csv, "w", newline="")  # noqa: SIM115 (written pair by pair)
    t0 = time.perf_counter()
    for n, (method, session, pair) in enumerate(order):
        new = pair_rows(method, session, pair, colour, rng)
        rows += new
        if handle is not None:
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(new[0]))
                writer.writeheader()
            writer.writerows(new)
            handle.flush()
        print(f"  {n + 1}/{len(order)} pairs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if handle is not None:
        handle.close()
    print(summary(rows))


def summarise(path: str) -> None:
    """Print the table of a CSV this script wrote (e.g. of a run stopped early)."""
    with open(path, newline="") as f:
        rows = [{k: (v if k in ("model", "pair", "heatmap") else float(v)) for k, v in r.items()}
                for r in csv.DictReader(f)]
    print(summary(rows))


if __name__ == "__main__":
    main()
