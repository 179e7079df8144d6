"""The engine of reid-inspector: QAConv matching, re-ranking, TLift, training; no Qt.

Importing it sets OpenMP's wait policy to ``PASSIVE`` unless the environment already names
one. OpenMP (torch's and numba's) reads the policy once, when its runtime loads: with the
default, threads spin after each parallel region and slow whatever else wants the cores,
such as TLift right after re-ranking (``benchmarks/bench_wait_policy.py`` measures it). Nothing else is imported here, so the policy is in place
before torch or numba is, unless the caller imported them first.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
