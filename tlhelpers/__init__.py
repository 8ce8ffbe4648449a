"""tlhelpers: the tested helpers behind the transfer-learning course notebooks.

Notebooks teach, ``tlhelpers`` does. Each module is named after the concept it
implements (``models``, ``data``, ``training``, ``losses``, ``transferability``)
and each function says which notebook teaches it.
"""

__version__ = "0.1.0"
