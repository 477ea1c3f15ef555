"""subject_ref: a keyed, versioned pseudonym of a person (HMAC-SHA256 of the 12 digits, base32)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def subject_ref(digits: str, *, key: bytes, version: str = "v1") -> str:
    mac = hmac.new(key, digits.encode("ascii"), hashlib.sha256).digest()
    return f"{version}:" + base64.b32encode(mac).decode("ascii").rstrip("=")
