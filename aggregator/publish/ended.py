"""Feeds whose category left the config: which still say "this feed has ended", which are due for
removal, and the one entry they hold; pure (publish writes and removes the files).

A category that was published and is no longer in the config (or has no source left) ends: for
ENDED_KEEP_S its files hold one entry saying so, with a stable id, dated when the end was first seen
(so the bytes stay the same run after run); then those files, and only those, are removed. A
category that comes back is published again as usual. Only a config that loaded can end a feed
(one that fails to load publishes nothing), and even a mistaken removal costs subscribers nothing
for ENDED_KEEP_S: putting the category back restores the feed with every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from aggregator.model import Article, OutputConfig
from aggregator.publish import formatting
from aggregator.publish.formatting import FeedSpec

ENDED_KEEP_S = 30 * 86400  # longer than a reader that polls weekly, and a month of grace to put it back
FORMATS = ("atom", "rss", "json", "html")  # the extensions of a feed's files: the only names ever removed


@dataclass(frozen=True)
class EndedFeed:
    slug: str
    title: str
    since: datetime  # the first publish without it
    files: tuple[str, ...]  # its files as published (e.g. news.atom, news.rss): aggregator's own to remove

    @property
    def spec(self) -> FeedSpec:
        return FeedSpec(self.slug, self.title, "This feed has ended")

    def is_due(self, now: datetime) -> bool:
        """True once it has said so for ENDED_KEEP_S: its files go."""
        return is_due(self.since, now)

    @classmethod
    def from_record(cls, slug: str, record: Mapping[str, object]) -> EndedFeed:
        """One from the publish marker's record; ValueError unless it names a feed's own files only
        (a slug and its known extensions), whatever the marker holds."""
        since, files = formatting.utc(datetime.fromisoformat(str(record["since"]))), record["files"]
        if not formatting.SLUG.fullmatch(slug) or since is None or not isinstance(files, list):
            raise ValueError(f"not an ended feed: {slug!r}")
        if any(name not in {f"{slug}.{fmt}" for fmt in FORMATS} for name in files):
            raise ValueError(f"ended feed {slug!r}: files {files!r} are not its own")
        return cls(slug, str(record["title"]), since, tuple(files))


def is_due(since: datetime, now: datetime) -> bool:
    """Whether a feed that ended at `since` has said so long enough at `now`."""
    moment = formatting.utc(now) or now
    return moment - since >= timedelta(seconds=ENDED_KEEP_S)


def track_ended(ended: Mapping[str, EndedFeed], published: Mapping[str, str], live: Collection[str],
                files_of: Callable[[str], Iterable[str]], now: datetime) -> tuple[list[EndedFeed], list[EndedFeed]]:
    """(feeds to publish as ended, feeds due for removal), from those ended before (`ended`), those
    published at the last publish (`published`: slug -> title), the feeds published now (`live`) and
    the files a feed is published as (`files_of(slug)`: formatting.feed_files)."""
    since = formatting.utc(now) or now
    current = {slug: feed for slug, feed in ended.items() if slug not in live}
    for slug, title in published.items():
        if slug not in live and slug not in current and formatting.SLUG.fullmatch(slug):
            files = tuple(name for name in files_of(slug) if name.rpartition(".")[2] in FORMATS)
            current[slug] = EndedFeed(slug, title, since, files)
    feeds = [current[slug] for slug in sorted(current)]
    return [f for f in feeds if not f.is_due(now)], [f for f in feeds if f.is_due(now)]


def ended_article(output: OutputConfig, feed: EndedFeed) -> Article:
    """The one entry of an ended feed: a stable id (its Atom URL + #ended), dated when it ended,
    linking to the site's index of the feeds still published."""
    site = formatting.base_url(output)
    title = formatting.text(feed.title, formatting.MAX_TITLE) or feed.slug
    return Article(
        id=formatting.feed_url(output, feed.slug, "atom") + "#ended",
        source_url=site,
        source_name=formatting.site_title(output),
        title="This feed has ended",
        link=site,
        published=feed.since,
        updated=feed.since,
        summary=f"“{title}” is no longer published here; see {site} for the feeds that are.",
        content_html=f"<p>“{escape(title)}” is no longer published here. "
                     f'The feeds that are: <a href="{escape(site)}">{escape(site)}</a>.</p>',
    )
