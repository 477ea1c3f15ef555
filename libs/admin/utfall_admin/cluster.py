"""The cluster's topics, one principal per service and their ACLs."""

from __future__ import annotations

from collections.abc import Mapping

from utfall_platform.kafka_acl import SERVICE_GRANTS

from .errors import AdminError


def service_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """Each service principal's password from UTFALL_KAFKA_PASSWORD_<SERVICE>; every one must be set."""
    passwords = {name: env.get(f"UTFALL_KAFKA_PASSWORD_{name.upper()}", "") for name in SERVICE_GRANTS}
    missing = sorted(f"UTFALL_KAFKA_PASSWORD_{n.upper()}" for n, pw in passwords.items() if not pw)
    if missing:
        raise AdminError(f"set {', '.join(missing)}")
    return passwords
