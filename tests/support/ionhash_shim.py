"""Test-only shim: make the `ionhash` 1.2.1 package usable on amazon.ion 0.15.

ionhash's `__init__` does `from amazon.ion.simple_types import _IonNature` and then sets
`_IonNature.ion_hash = ion_hash`, so that every IonPy value gains an `ion_hash(algorithm)` method. amazon.ion
0.11 removed `_IonNature` (amazon-ion/ion-hash-python issues #36/#37), so the import fails. The rest of
ionhash (`fast_value_hasher`, `hasher`) only uses names that still exist.

`reference_ion_hash(value)` gives ionhash's SHA-256 hash of an IonPy value (as `simpleion.loads` returns it,
value model ION_PY). Importing this module also attaches `ion_hash` to the IonPy classes, as ionhash does on
older amazon.ion releases. This lives in tests/ only: ledgerdr itself never imports ionhash.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

from amazon.ion import simple_types

_IONPY_CLASSES = (
    simple_types.IonPyNull,
    simple_types.IonPyDecimal,
    simple_types.IonPyBytes,
    simple_types.IonPyInt,
    simple_types.IonPyBool,
    simple_types.IonPyFloat,
    simple_types.IonPyText,
    simple_types.IonPyTimestamp,
    simple_types.IonPySymbol,
    simple_types.IonPyList,
    simple_types.IonPyDict,
)


class _IonNature:
    """Stand-in for the removed base class: ionhash only sets an attribute on it."""


def _import_ionhash() -> Any:
    if "ionhash" in sys.modules:
        return sys.modules["ionhash"]
    # Provide the name only for the duration of the import, so amazon.ion is left as it was.
    simple_types._IonNature = _IonNature  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():  # ionhash subclasses a deprecated amazon.ion Enum helper
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module("ionhash")
    finally:
        del simple_types._IonNature  # type: ignore[attr-defined]
    for cls in _IONPY_CLASSES:
        cls.ion_hash = module.ion_hash  # type: ignore[attr-defined]
    return module


ionhash = _import_ionhash()


def reference_ion_hash(value: Any, algorithm: str = "SHA256") -> bytes:
    """ionhash's Ion Hash of an IonPy value (raises whatever ionhash raises)."""
    return value.ion_hash(algorithm)
