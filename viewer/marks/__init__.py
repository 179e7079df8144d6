"""Relevance-feedback marks: "same person" / "different person" on result tiles, kept per query
(``state``, Qt-free), re-ranked through ``engine.feedback.refine`` in background jobs
(``controller``)."""
