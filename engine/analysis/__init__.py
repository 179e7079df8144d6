"""Plot data (CMC, ROC, score distributions, camera pairs, TLift sweeps: :mod:`.plot_data`) and its
CSV and PNG writers (:mod:`.plot_csv`, :mod:`.plot_png`); the simulated user that measures relevance
feedback (:mod:`.feedback_sim`)."""
