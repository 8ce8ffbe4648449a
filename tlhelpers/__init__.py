"""tlhelpers: the tested helpers behind the transfer-learning course notebooks.

Notebooks teach, ``tlhelpers`` does. Each module is named after the concept it
implements (``models``, ``data``, ``training``, ``losses``, ``transferability``);
ARCHITECTURE.md's generated tables say which notebooks use each.
"""

from .threads import prepare_environment as _prepare_environment

__all__ = ["__version__"]

__version__ = "0.1.0"

# TLHELPERS_THREADS=passive needs OMP_WAIT_POLICY before torch loads (tlhelpers.threads).
_prepare_environment()
