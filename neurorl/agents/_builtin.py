"""Import every built-in agents module so that each registers itself.

Every module of this package whose name does not start with an underscore and
is not ``base`` is imported; adding a file is enough to register it.
"""

import importlib
import pkgutil

_package = __name__.rsplit(".", 1)[0]
for _info in pkgutil.iter_modules(importlib.import_module(_package).__path__):
    if not _info.name.startswith("_") and _info.name != "base" and not _info.ispkg:
        importlib.import_module(f"{_package}.{_info.name}")
