"""Generation speed of the synthetic benchmark, images per second on one core.

Prints the rate of (1) drawing + JPEG-encoding single crops, (2) a whole ``generate`` call
(planning, rendering, writing, loading) for domain A and B test splits, and, as a reference
measured in the same process, (3) just reading the written JPEGs back with OpenCV, the cost a
data loader pays per image anyway.

    python benchmarks/bench_synth_speed.py [--ids 150] [--workers 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.data.synthetic import generate  # noqa: E402
from engine.data.synthetic.domains import get_domain  # noqa: E402
from engine.data.synthetic.people import VIEWS, sample_person  # noqa: E402
from engine.data.synthetic.render import (  # noqa: E402
    encode_jpeg,
    make_background,
    make_noise_bank,
    render_crop,
    sample_image_spec,
)


def crops_per_second(domain_name: str, n: int = 1000) -> float:
    domain = get_domain(domain_name)
    backgrounds = [make_background(domain, c, np.random.default_rng(c))
                   for c in range(domain.num_cameras)]
    bank = make_noise_bank(np.random.default_rng(0))
    people = [sample_person(np.random.default_rng(i), domain.palette) for i in range(64)]
    t = time.perf_counter()
    for i in range(n):
        cam = i % domain.num_cameras
        spec = sample_image_spec(np.random.default_rng([1, i]), domain.cameras[cam], 0.0,
                                 VIEWS[i % 4], 10.0 * i)
        crop, _ = render_crop(spec, people[i % 64], domain, backgrounds[cam], bank,
                              np.random.default_rng([2, i]))
        encode_jpeg(crop, spec.quality)
    return n / (time.perf_counter() - t)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=150, help="test identities per domain")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    args = parser.parse_args()
    print(f"{'what':<46}{'images':>8}{'seconds':>9}{'images/s':>10}")
    for name in ("A", "B"):
        rate = crops_per_second(name)
        print(f"{'draw + encode one crop, domain ' + name:<46}{1000:>8}{1000 / rate:>9.2f}{rate:>10.0f}")
    with tempfile.TemporaryDirectory(prefix="synth_speed_") as tmp:
        for name in ("A", "B"):
            root = os.path.join(tmp, name)
            t = time.perf_counter()
            generate(root, domain=name, num_train_ids=0, num_test_ids=args.ids,
                     workers=args.workers)
            seconds = time.perf_counter() - t
            files = [os.path.join(root, sub, f) for sub in ("bounding_box_test", "query")
                     for f in os.listdir(os.path.join(root, sub))]
            print(f"{'generate() test split, domain ' + name:<46}{len(files):>8}{seconds:>9.2f}"
                  f"{len(files) / seconds:>10.0f}")
            t = time.perf_counter()
            for f in files:
                cv2.imread(f)
            read = time.perf_counter() - t
            print(f"{'  reference: cv2.imread of those files':<46}{len(files):>8}{read:>9.2f}"
                  f"{len(files) / read:>10.0f}")
            print(f"  generation costs {seconds / read:.1f}x reading the files back")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
