"""A personnummer sealed to ingest: a provider that produces to Kafka may encrypt `person_id` to ingest's
public key (JWE compact serialisation, RFC 7516: ECDH-ES+A256KW key agreement on P-256, A256GCM content
encryption), so its raw topic, the broker's disks and every copy of them hold no personnummer at all. Only
ingest holds the private key and opens the value in memory, while it validates the one event.

Ingest publishes its public keys as a JWK Set at `GET /v1/keys/person-id`; the `kid` in a sealed value's
header says which key opens it, so keys can be rotated (the old one stays for records still on the topic).
The library is joserfc (no hand-written crypto).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

KEY_ALGORITHM = "ECDH-ES+A256KW"
CONTENT_ENCRYPTION = "A256GCM"
# five base64url parts, as a JWE compact serialisation is (the encrypted key part may be empty)
SEALED_PATTERN = r"[A-Za-z0-9_-]{10,2000}\.[A-Za-z0-9_-]{0,2000}\.[A-Za-z0-9_-]{1,200}\.[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{1,200}"
_SEALED = re.compile(rf"^{SEALED_PATTERN}\Z")


class SealError(ValueError):
    """A sealed value ingest cannot open: another key, a damaged value, or not JWE at all."""


def looks_sealed(text: str) -> bool:
    return bool(_SEALED.match(text))


def new_key_set(kid: str) -> dict[str, Any]:
    """A private JWK Set with one fresh P-256 key: what ingest's `UTFALL_PERSON_ID_KEYS` holds."""
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "enc", "alg": KEY_ALGORITHM})
    return {"keys": [key.as_dict(private=True)]}


def public_key_set(private: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of a key set, to publish."""
    keys = KeySet.import_key_set(dict(private))  # type: ignore[arg-type]
    return {"keys": [key.as_dict(private=False) for key in keys.keys]}


def seal(person_id: str, public: Mapping[str, Any]) -> str:
    """A provider's side: `person_id` encrypted to the first key of ingest's public key set."""
    jwk = dict(public["keys"][0])
    header = {"alg": KEY_ALGORITHM, "enc": CONTENT_ENCRYPTION, "kid": jwk.get("kid")}
    return jwe.encrypt_compact(header, person_id.encode(), ECKey.import_key(jwk))


class Unsealer:
    """Ingest's side: opens sealed values with its private keys."""

    def __init__(self, private: str | Mapping[str, Any]) -> None:
        document = json.loads(private) if isinstance(private, str) else dict(private)
        self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        self.public = public_key_set(document)

    def unseal(self, token: str) -> str:
        try:
            opened = jwe.decrypt_compact(token, self._keys, algorithms=[KEY_ALGORITHM, CONTENT_ENCRYPTION])
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise SealError(type(exc).__name__) from None
        if opened.protected.get("alg") != KEY_ALGORITHM or opened.protected.get("enc") != CONTENT_ENCRYPTION:
            raise SealError("algorithm")
        if opened.plaintext is None:
            raise SealError("empty")
        return opened.plaintext.decode("ascii", "replace")
