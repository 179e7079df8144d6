"""Subcommands of ``python -m engine``: one module each, with ``add_arguments`` and ``run``."""
