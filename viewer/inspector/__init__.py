"""The match inspector: Qt-free state, its jobs (controller) and its view."""
