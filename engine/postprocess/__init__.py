"""Post-processing of matcher scores: k-reciprocal re-ranking, TLift and the pipeline joining them."""
from engine.jobs import Cancelled
from engine.postprocess.pipeline import (
    RERANK_DEFAULTS,
    TLIFT_DEFAULTS,
    SweepPoint,
    distance_from_logits,
    distances_of,
    final_distances,
    final_distances_from_similarity,
    post_process,
    similarity_from_logits,
    tlift_sweep,
)
from engine.postprocess.rerank import re_rank
from engine.postprocess.tlift import tlift

__all__ = [
    "Cancelled",
    "RERANK_DEFAULTS",
    "TLIFT_DEFAULTS",
    "SweepPoint",
    "distance_from_logits",
    "distances_of",
    "final_distances",
    "final_distances_from_similarity",
    "post_process",
    "re_rank",
    "similarity_from_logits",
    "tlift",
    "tlift_sweep",
]
