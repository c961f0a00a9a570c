"""Timestamps as cnnkit stores them: UTC, to the second, ISO 8601 ("2026-12-03T13:34:30Z")."""

from __future__ import annotations

import time


def utc_timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
