"""Issue 20 on the publish side, end to end over loopback with the real CLI: what outputs may say about
a source (no query string or userinfo), text published exactly as the feed meant it (escaped once, no
bidi controls, Hexo scalars kept strings, full titles for filters), and the render version that makes
an upgrade render everything again."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RecordingServer, Route
from lxml import etree

from aggregator.cli import main

ATOM = "{http://www.w3.org/2005/Atom}"
RSS_TYPE = {"Content-Type": "application/rss+xml"}


def rss(items: str, title: str = "Private feed", head: str = "") -> bytes:
    return (f'{head}<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{title}</title><link>https://example.org/</link><description>d</description>"
            f"{items}</channel></rss>").encode()


def item(n: int, title: str, extra: str = "") -> str:
    return (f"<item><guid>https://example.org/{n}</guid><title>{title}</title><link>https://example.org/{n}</link>"
            f"<pubDate>Tue, 28 Dec 2021 03:4{n % 10}:53 GMT</pubDate><description>body {n}</description>{extra}</item>")


def write_config(tmp_path: Path, sources: str, output: str = "", extra: str = "") -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""\
output:
  dir: {tmp_path / 'out'}
  base_url: 'https://news.example.org/feeds/'
  max_entries: 0
  formats: [atom, rss, json]
{output}state: {tmp_path / 'state.db'}
categories:
  news: {{title: News}}
{extra}sources:
{sources}""", encoding="utf-8")
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["run", "--config", str(config), "--no-progress", "--force", *flags]) == 0
    return capsys.readouterr().out


def entries(path: Path) -> list[etree._Element]:
    return list(etree.parse(str(path)).getroot().iter(f"{ATOM}entry"))


def test_a_render_version_bump_renders_every_entry_again(tmp_path: Path, http_server: RecordingServer,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Outputs are cached on versions (the publish key, spliced Atom entries, feed digests): a change to
    the rendered bytes must reach files written by older code, so RENDER_VERSION is in every key."""
    import aggregator.publish as publish

    rendered: list[str] = []
    real_atom = publish._RENDERERS["atom"]

    def counting_atom(spec, articles, *args, **kwargs):  # type: ignore[no-untyped-def]
        rendered.extend(f"{spec.slug}:{a.id}" for a in articles)
        return real_atom(spec, articles, *args, **kwargs)

    monkeypatch.setitem(publish._RENDERERS, "atom", counting_atom)
    http_server.routes["/f.xml"] = Route(200, RSS_TYPE, rss(item(1, "One") + item(2, "Two")))
    config = write_config(tmp_path, f"  - {{url: '{http_server.url('/f.xml')}', category: news}}\n",
                          output=f"  hexo: {{dir: {tmp_path / 'posts'}}}\n")
    run(config, capsys)
    assert len(rendered) == 4  # two entries in news.atom and in all.atom
    rendered.clear()
    run(config, capsys)
    assert rendered == []  # nothing changed: nothing rendered
    posts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "posts").iterdir()}
    (tmp_path / "posts" / next(iter(posts))).write_text("stale, as an older version wrote it\n", encoding="utf-8")
    monkeypatch.setattr(publish, "RENDER_VERSION", publish.RENDER_VERSION + 1)
    run(config, capsys)
    assert len(rendered) == 4  # every entry rendered again, none copied from the old files
    assert all("stale" not in p.read_text(encoding="utf-8") for p in (tmp_path / "posts").iterdir())
