"""Models: the feature-map backbone, the QAConv matcher and the global baseline."""
from .backbone import FeatureMapBackbone, build_backbone, freeze_backbone_bn, preprocess
from .baseline import GlobalClassifier, pool_embeddings
from .config import ModelConfig
from .qaconv import Correspondence, QAConv

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
