"""Models: the feature-map backbone, the QAConv matcher and the global baseline."""
from engine.models.backbone import (
    FeatureMapBackbone,
    build_backbone,
    freeze_backbone_bn,
    preprocess,
)
from engine.models.baseline import GlobalClassifier, pool_embeddings
from engine.models.config import ModelConfig
from engine.models.qaconv import Correspondence, QAConv

__all__ = [
    "Correspondence",
    "FeatureMapBackbone",
    "GlobalClassifier",
    "ModelConfig",
    "QAConv",
    "build_backbone",
    "freeze_backbone_bn",
    "pool_embeddings",
    "preprocess",
]
