"""The analysis plots: Qt-free state, its jobs (controller), pyqtgraph drawing, the panel and its dock."""
