"""The demo's checkpoint (``model.pt``, with ``model.json`` and ``README.md``): package data.

The viewer opens it when no checkpoint is given; ``viewer.tasks.demo_checkpoint`` finds it
through ``importlib.resources``, so an installed package needs no repository files.
"""
