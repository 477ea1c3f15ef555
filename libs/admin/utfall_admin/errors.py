"""What the operator can fix."""

from __future__ import annotations


class AdminError(Exception):
    """A mistake the operator can fix; printed as one line, never as a traceback."""
