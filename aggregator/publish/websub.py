"""WebSub publisher pings (https://www.w3.org/TR/websub/#publishing): tell the hub which feeds changed."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

TIMEOUT_S = 10.0


def ping_hub(hub: str, feed_urls: Sequence[str], *, timeout_s: float = TIMEOUT_S) -> list[str]:
    """POST hub.mode=publish for each URL; returns one warning per failure (a ping never fails a run)."""
    warnings: list[str] = []
    if not feed_urls:
        return warnings
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        for url in feed_urls:
            try:
                response = client.post(hub, data={"hub.mode": "publish", "hub.url": url})
            except httpx.HTTPError as exc:
                warnings.append(f"websub hub {hub}: ping for {url} failed: {exc.__class__.__name__}: {exc}")
                continue
            if response.status_code >= 300:
                warnings.append(f"websub hub {hub}: ping for {url} answered HTTP {response.status_code}")
    return warnings
