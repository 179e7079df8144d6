"""Scoring speed for torch thread settings, alone and next to a competing process.

Usage::

    python benchmarks/bench_threads.py [--seconds 3] [--rounds 2]

QAConv scoring at the demo model's shapes (D = 128, 8 x 4 maps, fp16 maps as stored) runs in
a fresh process per setting, since OpenMP reads its settings once at start-up:

- torch's default (as many threads as cores, OpenMP's default wait policy: spin, then sleep),
  the baseline every ratio is quoted against;
- 1 thread, and 1 and 2 threads with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at
  once instead of spinning); on a 2-core machine the default is 2 threads spinning;

each once on its own and once while a busy-loop Python process competes for a core (as a
browser tab, an IDE indexing, or another job would). Settings are interleaved over
``--rounds`` rounds and the best round of each is kept (the machine may be shared). The load
average at the start is printed: on a busy machine "alone" is not idle.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = [  # (label, threads or None for torch's default, passive wait policy)
    ("default (torch's threads, default wait)", None, False),
    ("1 thread", 1, False),
    ("1 thread, PASSIVE", 1, True),
    ("2 threads, PASSIVE", 2, True),
]


def child(seconds: float) -> None:
    """Score for about ``seconds`` and print the best pairs/s of the calls (JSON)."""
    import torch
    import torch.nn.functional as F

    from engine.models.qaconv import QAConv
    from engine.models.scoring import score_matrix

    torch.manual_seed(0)
    d, h, w, p, g = 128, 8, 4, 64, 1024
    probe = F.normalize(torch.randn(p, d, h, w), dim=1).numpy().astype("float16")
    gallery = F.normalize(torch.randn(g, d, h, w), dim=1).numpy().astype("float16")
    matcher = QAConv(d, h, w).eval()
    score_matrix(matcher, probe, gallery)  # warm-up
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        score_matrix(matcher, probe, gallery)
        rates.append(p * g / (time.perf_counter() - t0))
    print(json.dumps({"pairs_per_s": max(rates), "threads": torch.get_num_threads()}))


def run_setting(threads: int | None, passive: bool, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, __file__, "--child", "--seconds", str(seconds)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="scoring time per setting and round")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best counts")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.seconds)
        return 0

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"QAConv D=128 8x4 maps, 64 x 1024 pairs per call; best of {args.rounds} round(s)",
          flush=True)
    best: dict[tuple[str, bool], float] = {}
    seen_threads: dict[str, int] = {}
    for _ in range(args.rounds):
        for competing in (False, True):
            rival = None
            if competing:  # a busy loop on one core, as another program would be
                rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for label, threads, passive in SETTINGS:
                    result = run_setting(threads, passive, args.seconds)
                    print(f"  {label}{', competing' if competing else ''}: "
                          f"{result['pairs_per_s']:.0f} pairs/s", flush=True)
                    key = (label, competing)
                    best[key] = max(best.get(key, 0.0), result["pairs_per_s"])
                    seen_threads[label] = result["threads"]
            finally:
                if rival is not None:
                    rival.kill()
                    rival.wait()
    base_alone = best[(SETTINGS[0][0], False)]
    base_busy = best[(SETTINGS[0][0], True)]
    print(f"{'setting':42s} {'alone':>12s} {'x default':>9s} {'competing':>12s} {'x default':>9s}")
    for label, _, _ in SETTINGS:
        alone, busy = best[(label, False)], best[(label, True)]
        print(f"{label + f' [{seen_threads[label]}]':42s} {alone:10.0f}/s {alone / base_alone:8.2f}x "
              f"{busy:10.0f}/s {busy / base_busy:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
