"""Strict JSON, written once: every file and response ponder writes goes through `jsonable`.

JSON has no NaN or infinity; a score a scorer could not give (NaN) is `null`. Mappings
become objects with string keys, tuples and lists become arrays, frozen dataclasses with a
`to_dict` use it, and anything else that is not a JSON scalar is written as its `str`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """`value` as plain, strict JSON data (NaN and infinities become None)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    return str(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of `value` (never NaN, never a non-ASCII escape)."""
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False, allow_nan=False)
