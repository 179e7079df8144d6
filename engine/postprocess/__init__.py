"""Post-processing of matcher scores: k-reciprocal re-ranking, TLift and the pipeline joining them."""
from engine.jobs import Cancelled
from engine.postprocess.params import RerankParams, TLiftParams, rerank_params, tlift_params
from engine.postprocess.pipeline import (
    SweepPoint,
    distance_from_logits,
    distances_of,
    final_distances,
    final_distances_from_similarity,
    lift_distances,
    post_process,
    similarity_from_logits,
    tlift_sweep,
)
from engine.postprocess.rerank import re_rank
from engine.postprocess.tlift import tlift

__all__ = [
    "Cancelled",
    "RerankParams",
    "SweepPoint",
    "TLiftParams",
    "distance_from_logits",
    "distances_of",
    "final_distances",
    "final_distances_from_similarity",
    "lift_distances",
    "post_process",
    "re_rank",
    "rerank_params",
    "similarity_from_logits",
    "tlift",
    "tlift_params",
    "tlift_sweep",
]
