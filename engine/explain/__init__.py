"""Explanations of a match: exact correspondences and contributions (:mod:`.inspect`), occlusion
and sensitivity maps (:mod:`.occlusion`)."""
