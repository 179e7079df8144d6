"""The synthetic person re-identification benchmark (procedurally drawn pedestrians in the
Market-1501 layout): :func:`generate` writes one; the parts are in :mod:`.domains`, :mod:`.people`,
:mod:`.render`, :mod:`.timeline` and :mod:`.benchmark`."""
from engine.data.synthetic.benchmark import (
    DEFAULT_SIZES,
    MARKET_SCALE,
    VERSION,
    SyntheticImage,
    generate,
    read_settings,
)

__all__ = ["VERSION", "DEFAULT_SIZES", "MARKET_SCALE", "SyntheticImage", "generate", "read_settings"]
