"""The post-processing parameter records (``RerankParams``, ``TLiftParams``) for the Qt side.

They are defined by ``engine.session``, whose import loads torch and torchvision (seconds). The
window needs only the two small dataclasses to build itself, so they are taken from a torch-free
engine module when the engine provides one (``engine.postprocess.params``, requested from the
engine's owner); the torch import then happens in the load job, off the GUI thread, while the
window is already on screen.
"""
from __future__ import annotations

try:
    from engine.postprocess.params import RerankParams, TLiftParams
except ImportError:  # the engine keeps them in engine.session: correct, only slower to start
    from engine.session import RerankParams, TLiftParams

__all__ = ["RerankParams", "TLiftParams"]
