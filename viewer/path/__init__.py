"""The person's path: the query and its confirmed sightings on a camera x time chart (``state``,
Qt-free; ``controller``; ``view``, pyqtgraph), with the camera-pair transit table."""
