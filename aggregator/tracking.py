"""Click-tracking query parameters: one table, used by cleaning (links shown to readers) and by the
store (comparison keys); pure, no I/O. Such a parameter only says who sent the click; removing it
never changes the document."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "_hs", "oly_", "vero_", "__s")
TRACKING_NAMES = frozenset({
    "fbclid", "gclid", "dclid", "gclsrc", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "mkt_tok", "ncid", "wt.mc_id", "wt_mc_id", "cmpid", "icid", "s_cid", "spm", "scm", "from_spmid",
    "share_source", "share_medium", "share_from", "share_token", "vd_source", "from_rss", "ref_src", "ref_url",
    "sr_share", "rb_clickid", "__twitter_impression", "_openstat",
})


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_NAMES or lowered.startswith(TRACKING_PREFIXES)


@lru_cache(maxsize=2048)
def strip_tracking(url: str) -> str:
    """`url` without its tracking query parameters; every other byte stays as it was (issue 20: parsing
    and re-encoding the query turned `;` into `%3B` and `%20` into `+`, which changes what some servers
    read). The query is split on `&` only, as parse_qsl does; a name is compared percent-decoded."""
    head, mark, rest = url.partition("?")
    if not mark or "#" in head:
        return url
    query, hash_mark, fragment = rest.partition("#")
    pairs = query.split("&")
    kept = [pair for pair in pairs if not is_tracking_param(unquote_plus(pair.partition("=")[0]))]
    if len(kept) == len(pairs):
        return url
    query = "&".join(kept)
    return head + ("?" + query if query else "") + hash_mark + fragment


# The same parameters inside HTML text (href="...?utm_source=x&a=1"), for hashing normalized HTML.
TRACKING_IN_TEXT = re.compile(
    r"([?&])(?:(?:" + "|".join(re.escape(p) for p in TRACKING_PREFIXES) + r")[\w.]*|"
    + "|".join(re.escape(n) for n in sorted(TRACKING_NAMES))
    + r")=[^&#\"'\s<>]*",
    re.IGNORECASE,
)
