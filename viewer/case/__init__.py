"""A case: one query's investigation saved as a folder (``state``, Qt-free) and opened again."""
