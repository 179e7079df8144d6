"""numba's on-disk cache of compiled kernels, made optional: a broken or unwritable cache costs
one compilation and one warning, never a feature.

numba keeps compiled kernels beside the package (``__pycache__``), or under the user's cache
folder when that is read-only (``NUMBA_CACHE_DIR`` overrides both). A file there that cannot be
read (random bytes, empty, another version's) makes the kernel compile again and its cache
entry be written anew; with no writable folder at all the kernels are compiled in memory in
each process. numba's cache files are pickles, which run code when loaded: the folder must be
writable only by the user who installed the tool.
"""
from __future__ import annotations

import contextlib
import logging

from numba import njit

__all__ = ["cached_njit"]

log = logging.getLogger(__name__)

_warned = False


def _warn_once(problem: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("compiled-kernel cache: %s; compiling the kernels again instead (slower "
                    "first use, same results)", problem)


def _tolerate_damage(cache) -> None:
    """Make a numba ``FunctionCache`` treat unreadable or unwritable files as a cache miss."""
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as exc:  # a pickle of random bytes can raise nearly anything
            _warn_once(f"a file in {cache.cache_path} cannot be read ({type(exc).__name__}: {exc})")
            with contextlib.suppress(Exception):
                cache.flush()  # an empty index: the fresh compilation is saved over the bad files
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception as exc:
            _warn_once(f"{cache.cache_path} cannot be written ({type(exc).__name__}: {exc})")

    cache.load_overload, cache.save_overload = load_overload, save_overload


def cached_njit(**options):
    """``numba.njit(cache=True, **options)``, falling back to compiling in memory when no
    cache folder is writable and to compiling again when a cache file is damaged."""
    def decorate(func):
        try:
            dispatcher = njit(cache=True, **options)(func)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available ..."
            _warn_once(f"no writable folder ({exc})")
            return njit(**options)(func)
        _tolerate_damage(dispatcher._cache)
        return dispatcher

    return decorate
