"""The occlusion panel: Qt-free state, its jobs (controller) and its view."""
