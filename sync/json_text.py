"""Reading JSON text the core recorded (specs, records, errors in status): orjson when it is installed and takes
the text, the standard library otherwise.

orjson refuses some of what the standard library reads (NaN and Infinity, lone surrogates): those fall back.
It also reads an integer beyond 64 bits as a float instead of refusing it, so a text with 19 or more digits in a
row (where such an integer could be) goes to the standard library first. Every answer is what `json.loads`
gives (tests/test_json_text.py); a steady sync's few kilobytes of recorded JSON are only read about three times
faster."""
from __future__ import annotations

import json
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional (bench/no_orjson hides it)
    orjson = None  # type: ignore[assignment]

# 18 digits always fit a 64-bit integer; a longer run might be an integer orjson would turn into a float.
_LONG_DIGIT_RUN = re.compile(r"\d{19}")


def loads(text: str) -> Any:
    """`json.loads(text)`: the same value or the same ValueError."""
    if orjson is not None and not _LONG_DIGIT_RUN.search(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
