"""Write a synthetic re-id benchmark (Market-1501 layout): ``python -m engine synth``."""
from __future__ import annotations

import argparse
import time


def _pair(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two integers), got {text!r}") from None
    return lo, hi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", default="A", type=str.upper, choices=("A", "B"),
                        help="A: six outdoor cameras, bright clothes; B: five cameras, darker "
                             "clothes, stronger colour casts, more crowding (default: A)")
    parser.add_argument("--out", required=True, help="output folder (created; must be new, "
                        "empty, or a synthetic benchmark to --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed and "
                        "sizes give byte-identical files (default: 0)")
    parser.add_argument("--train-ids", type=int, default=None,
                        help="identities in bounding_box_train (default: 400; 751 with --market-scale)")
    parser.add_argument("--test-ids", type=int, default=None,
                        help="test identities, queried one image per camera (default: 150; "
                             "750 with --market-scale)")
    parser.add_argument("--distractors", type=int, default=None,
                        help="gallery images of people seen once, pid 0000 (default: 200; "
                             "2793 with --market-scale)")
    parser.add_argument("--junk", type=int, default=None,
                        help="bad crops with pid -1 in bounding_box_test, dropped when loaded "
                             "(default: 100; 3819 with --market-scale)")
    parser.add_argument("--cams-per-id", type=_pair, default=None, metavar="MIN,MAX",
                        help="cameras each identity walks through (default: 2,4; 5,6 with "
                             "--market-scale, before visits are dropped to hit the counts)")
    parser.add_argument("--frames-per-visit", type=_pair, default=None, metavar="MIN,MAX",
                        help="detections per camera visit (default: 2,5; 3,8 with --market-scale, "
                             "before detections are dropped to hit the counts)")
    parser.add_argument("--rate", type=float, default=None,
                        help="groups of walkers arriving per minute on each of the test and "
                             "train sides (default: 2; 4 with --market-scale)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="exact number of train images (default: as drawn; 12936 with "
                             "--market-scale)")
    parser.add_argument("--queries", type=int, default=None,
                        help="exact number of queries (default: as drawn; 3368 with --market-scale)")
    parser.add_argument("--gallery-images", type=int, default=None,
                        help="exact number of gallery images, distractors included, junk excluded "
                             "(default: as drawn; 15913 with --market-scale)")
    parser.add_argument("--market-scale", action="store_true",
                        help="Market-1501's splits: 751 train ids / 12,936 images; 3,368 queries; "
                             "15,913 gallery images incl. 2,793 distractors; 3,819 junk files")
    parser.add_argument("--workers", type=int, default=1,
                        help="rendering processes; output does not depend on it (default: 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing synthetic benchmark at --out")


def _sizes(args: argparse.Namespace) -> dict:
    from engine.data.synthetic import DEFAULT_SIZES, MARKET_SCALE

    base = dict(MARKET_SCALE if args.market_scale else DEFAULT_SIZES)
    given = {"num_train_ids": args.train_ids, "num_test_ids": args.test_ids,
             "num_distractors": args.distractors, "num_junk": args.junk,
             "cams_per_id": args.cams_per_id, "frames_per_visit": args.frames_per_visit,
             "group_rate": args.rate, "num_train_images": args.train_images,
             "num_queries": args.queries, "num_gallery_images": args.gallery_images}
    base.update({k: v for k, v in given.items() if v is not None})
    return base


def _print_counts(root: str) -> None:
    import json
    import os

    with open(os.path.join(root, "synthetic.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    counts = meta["counts"]
    cams = meta["cameras"]
    header = "split      images   ids  distr  junk | " + " ".join(f"{f'c{c + 1}':>6}" for c in range(cams))
    print(header)
    for split in ("train", "query", "gallery"):
        c = counts[split]
        print(f"{split:<8} {c['images']:>8} {c['ids']:>5} {c['distractors']:>6} {c['junk']:>5} | "
              + " ".join(f"{n:>6}" for n in c["per_camera"]))
    print(f"occluded {100 * meta['occluded_share']:.1f}% of images, "
          f"truncated or misaligned {100 * meta['truncated_share']:.1f}%")


def run(args: argparse.Namespace) -> int:
    import os

    from engine.cli._common import StageBar
    from engine.data.synthetic import generate

    sizes = _sizes(args)
    marker = os.path.join(args.out, "synthetic.json")
    before = os.stat(marker).st_mtime_ns if os.path.isfile(marker) else None
    t0 = time.perf_counter()
    try:
        dataset = generate(args.out, domain=args.domain, seed=args.seed,
                           overwrite=args.overwrite, workers=args.workers, progress=StageBar(),
                           **sizes)
    except (ValueError, FileExistsError) as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    root = os.path.abspath(args.out)
    n_files = sum(len(os.listdir(os.path.join(root, sub)))
                  for sub in ("bounding_box_train", "bounding_box_test", "query"))
    print(f"synthetic domain {args.domain}, seed {args.seed} -> {root}")
    _print_counts(root)
    print(f"loaded: {len(dataset.train)} train, {len(dataset.query)} query, "
          f"{len(dataset.gallery)} gallery images (junk dropped)")
    if before is not None and os.stat(marker).st_mtime_ns == before:
        print("the folder already held this benchmark (same settings): loaded, not rewritten")
    else:
        print(f"{n_files} images in {seconds:.1f} s: {n_files / max(seconds, 1e-9):.0f} images/s "
              f"with {args.workers} worker(s) (planning and loading included)")
    return 0
