"""The lxml fast path against feedparser over the whole test corpus (tests/corpus): where it answers, it answers the same."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import pytest
from conftest import CORPUS

from aggregator.errors import ParseError
from aggregator.model import ParsedFeed
from aggregator.parse import fast, parse_feed

_SKIP_SUFFIXES = (".md", ".tsv", ".py", ".json")
DOCUMENTS = sorted(
    path.relative_to(CORPUS).as_posix()
    for folder in ("feeds", "rsshub", "hostile/xml")
    for path in (CORPUS / folder).rglob("*")
    if path.is_file() and path.suffix not in _SKIP_SUFFIXES
)
# Content types the fetch stage passes on, each steering feedparser's encoding choice differently.
CONTENT_TYPES = (
    "application/rss+xml; charset=utf-8",
    "text/xml",
    "text/html; charset=iso-8859-1",
    "application/octet-stream",
    "text/xml; charset=gbk",
)

Outcome = ParsedFeed | str  # a ParseError's message


def _source_url(name: str) -> str:
    return "http://src.example/" + name


@functools.cache
def _body(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _outcome(name: str, content_type: str, use_fast: bool) -> Outcome:
    headers = {"Content-Type": content_type} if content_type else {}
    saved, fast.ENABLED = fast.ENABLED, use_fast
    try:
        return _without_fingerprints(parse_feed(_body(name), headers, _source_url(name), "src"))
    except ParseError as exc:
        return str(exc)
    finally:
        fast.ENABLED = saved


def _without_fingerprints(parsed: ParsedFeed) -> ParsedFeed:
    """Only the fast path gives raw digests (test_parse_known.py); feedparser's articles get theirs later."""
    articles = tuple(dataclasses.replace(a, fingerprint="") for a in parsed.articles)
    return dataclasses.replace(parsed, articles=articles)


def _differences(got: Outcome, want: Outcome) -> Iterator[str]:
    """Field by field, so a failure names the article and field that differ."""
    if isinstance(got, str) or isinstance(want, str):
        if got != want:
            yield f"outcome: {got!r:.200} != {want!r:.200}"
        return
    if got.meta != want.meta:
        yield f"meta: {got.meta} != {want.meta}"
    if got.warnings != want.warnings:
        yield f"warnings: {got.warnings} != {want.warnings}"
    if len(got.articles) != len(want.articles):
        yield f"article count: {len(got.articles)} != {len(want.articles)}"
    for index, (mine, theirs) in enumerate(zip(got.articles, want.articles, strict=False)):
        for field in dataclasses.fields(mine):
            a, b = getattr(mine, field.name), getattr(theirs, field.name)
            if a != b:
                yield f"article {index} {field.name}: {a!r:.300} != {b!r:.300}"


def _accepts(name: str, content_type: str = "") -> bool:
    return fast.parse(_body(name), content_type.lower(), _source_url(name)) is not None


# The differential runs on exactly the (document, content type) pairs the fast path takes: a declined
# pair goes to feedparser alone, so comparing it would compare feedparser with itself.
ALL_CONTENT_TYPES = ("", *CONTENT_TYPES)
PAIRS = [(name, ct) for ct in ALL_CONTENT_TYPES for name in DOCUMENTS if _accepts(name, ct)]
DECLINED = sorted({(name, ct) for ct in ALL_CONTENT_TYPES for name in DOCUMENTS} - set(PAIRS))


@functools.cache
def _accepted() -> tuple[str, ...]:
    return tuple(name for name, ct in PAIRS if ct == "")


@pytest.mark.parametrize(("name", "content_type"), PAIRS, ids=[f"{n}|{ct or 'none'}" for n, ct in PAIRS])
def test_fast_path_equals_feedparser(name: str, content_type: str) -> None:
    want = _outcome(name, content_type, use_fast=False)
    got = _outcome(name, content_type, use_fast=True)
    assert list(_differences(got, want)) == []
    assert got == want


def test_the_differential_compares_enough_pairs() -> None:
    """How many pairs the comparison above covers, per content type (it must not shrink unnoticed)."""
    per_type = {ct: sum(1 for _n, t in PAIRS if t == ct) for ct in ALL_CONTENT_TYPES}
    # when written: 156 of 230 documents without a content type, 47 under text/xml (which means US-ASCII
    # unless it names a charset, so feedparser re-decodes), 66 under a GBK charset, 146-160 under the others
    assert per_type[""] >= 150, per_type
    assert min(per_type.values()) >= 45, per_type
    assert len(PAIRS) >= 720, len(PAIRS)


def test_every_declined_pair_says_why() -> None:
    silent = [(n, ct) for n, ct in DECLINED if not fast.decline_reason(_body(n), ct.lower(), _source_url(n))]
    assert silent == []


def test_fast_path_takes_most_well_formed_feeds() -> None:
    accepted = _accepted()
    formats = {fast.parse(_body(name), "", _source_url(name))["version"] for name in accepted}  # type: ignore[index]
    assert {"rss20", "atom10", "rss10"} <= formats
    real = [name for name in accepted if not name.startswith("hostile/")]
    assert len(real) >= 138, len(real)  # 141 of 184 real XML documents when written


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("hostile/xml/rss091_netscape_doctype.xml", "DOCTYPE"),
        ("hostile/xml/xhtml_content_script.xml", "application/xhtml+xml"),
        ("hostile/xml/utf7_declared.xml", ""),
        ("hostile/xml/trailing_garbage.xml", "XMLSyntaxError"),
        ("hostile/xml/gbk_bytes_declared_utf8.xml", "UnicodeDecodeError"),
        ("hostile/xml/bom_utf16le.xml", "wide encoding"),
        ("feeds/node-feedparser/illegally-nested.xml", "entry element item"),
    ],
)
def test_fast_path_declines_what_it_cannot_reproduce(name: str, reason: str) -> None:
    assert not _accepts(name)
    assert reason in fast.decline_reason(_body(name), "", _source_url(name))


def test_utf7_is_never_trusted() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-7"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    )
    assert fast.parse(body, "", "http://src.example/") is None
    assert "utf-7" in fast.decline_reason(body, "", "http://src.example/")


def test_switched_off_it_takes_nothing() -> None:
    name = _accepted()[0]
    saved, fast.ENABLED = fast.ENABLED, False
    try:
        assert fast.parse(_body(name), "", _source_url(name)) is None
    finally:
        fast.ENABLED = saved


# --- hand-made edge cases: the corners of feedparser's rules the corpus does not reach -----------------
# (xml:base, guid/link order, author parsing, tag bookkeeping, title/summary depth rules, mojibake repair,
# cp1252 references, media:group, RDF, encodings). Each is compared with feedparser, never with a guess.
_DECL = '<?xml version="1.0" encoding="utf-8"?>\n'
_NS = 'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" xmlns:x="urn:unknown"'


def _rss(items, channel="<title>Feed &amp; Co</title><link>http://example.com/</link>", extra=""):
    return (
        _DECL
        + f'<rss version="2.0" {_NS}{extra}><channel>{channel}'
        + "".join(f"<item>{i}</item>" for i in items)
        + "</channel></rss>"
    )


def _atom(
    entries,
    head='<title type="html">A &lt;b&gt;feed&lt;/b&gt;</title><id>tag:x,2020:feed</id><updated>2020-01-01T00:00:00Z</updated>',
    extra="",
):
    ns = _NS.replace(' xmlns:atom="http://www.w3.org/2005/Atom"', "")
    return (
        _DECL
        + f'<feed xmlns="http://www.w3.org/2005/Atom" {ns}{extra}>{head}'
        + "".join(f"<entry>{e}</entry>" for e in entries)
        + "</feed>"
    )


_EDGE_TEXTS = {
    "base_rel": _rss(
        [
            "<title>a</title><link>/rel/1?a=1&amp;b=2</link><guid>/g/1</guid>",
            '<guid isPermaLink="false">abc</guid><description>x</description>',
            "<guid>http://e.com/p</guid><title>t</title>",
            '<title>only</title><guid isPermaLink="True">zzz</guid>',
        ],
        extra=' xml:base="http://base.example/dir/"',
    ),
    "lang": _rss(['<title xml:lang="de_DE">Hallo</title>', "<title>x</title>"], extra=' xml:lang="en_US"'),
    "lang_el": _rss(["<title>x</title>"], channel="<title>t</title><language>fr-FR</language>"),
    "authors": _rss(
        [
            "<title>a</title><author>j@x.com (John Doe)</author><dc:creator>Jane</dc:creator>",
            "<title>b</title><dc:creator></dc:creator>",
            "<title>c</title><author>nobody@x.org</author><atom:author><atom:name>Z</atom:name></atom:author>",
            "<title>d</title><atom:author><atom:email>e@x.com</atom:email></atom:author><author>Bob</author>",
        ]
    ),
    "cats": _rss(
        [
            '<title>a</title><category domain="d">One</category><category>One</category><category/><category domain="q"/><category>Two</category><dc:subject>Three</dc:subject><media:category>Four</media:category><itunes:keywords>k1, k2,,k1</itunes:keywords><itunes:category text="Tech"/>'
        ]
    ),
    "enclosures": _rss(
        [
            '<title>a</title><enclosure url="/a.mp3" type="audio/mpeg" length="123"/><enclosure url="http://e.com/b.jpg" type="image/jpeg"/><atom:link rel="enclosure" href="c.ogg"/><media:content url="http://e.com/m.png" medium="image"/><media:thumbnail url="http://e.com/t.png"/>',
            '<title>b</title><media:thumbnail>http://e.com/text.png</media:thumbnail><itunes:image href="http://e.com/i.png"/>',
        ]
    ),
    "looks_html": _rss(
        [
            "<title>Tom &amp;amp; Jerry</title>",
            "<title>&lt;b&gt;bold&lt;/b&gt; x</title>",
            "<title>a &lt; b</title>",
            "<title>&amp;nbsp;x&amp;copy;</title>",
            "<title>&lt;foo&gt;x&lt;/foo&gt;</title>",
        ]
    ),
    "mojibake": _rss(["<title>CafÃ© &#233; Ã</title><description>&#150; dash &#x93;q&#x94;</description>"]),
    "desc_content": _rss(
        [
            "<title>a</title><description>d1</description><content:encoded><![CDATA[<p>c1</p>]]></content:encoded>",
            "<title>b</title><content:encoded>c2</content:encoded><description>d2</description>",
            "<title>c</title><itunes:summary>s3</itunes:summary><description>d3 &lt;b&gt;x&lt;/b&gt;</description>",
            "<title>d</title><description>d4</description><itunes:summary>s4</itunes:summary>",
            "<title>e</title><description>   </description>",
        ]
    ),
    "media_group": _rss(
        [
            '<media:group><media:title>mt</media:title><media:description>md</media:description><media:thumbnail url="http://e.com/x.jpg"/></media:group><title>real</title>',
            "<title>first</title><media:group><media:title>mt2</media:title></media:group>",
            "<media:group><media:title>only</media:title></media:group><link>http://e.com/3</link>",
            "<title></title><media:group><media:title>after-empty</media:title></media:group>",
        ]
    ),
    "unknown": _rss(
        [
            '<title>a</title><x:foo>bar</x:foo><x:bar a="1">t</x:bar><comments>http://e.com/c</comments><x:nest><title>nested</title></x:nest>'
        ]
    ),
    "ttl": _rss(["<title>a</title>"], channel="<title>t</title><ttl>15</ttl>"),
    "sy": _rss(
        ["<title>a</title>"],
        channel="<title>t</title><sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>",
    ),
    "image_first": _rss(
        ["<title>a</title>"],
        channel="<image><title>Img</title><url>http://e.com/i.png</url><link>http://e.com/</link></image><title>Real</title><link>http://e.com/</link>",
    ),
    "image_after": _rss(
        ["<title>a</title>"],
        channel="<title>Real</title><image><title>Img</title><url>http://e.com/i.png</url></image><title>Again</title>",
    ),
    "empties": _rss(["<title/><link/><guid/><description/>", "<title>x</title><link></link>"]),
    "dates": _rss(
        [
            "<title>a</title><pubDate>Mon, 06 Sep 2021 16:45:00 +0200</pubDate><dc:date>2021-09-07T10:00:00Z</dc:date>",
            "<title>b</title><pubDate>garbage</pubDate>",
            "<title>c</title><pubDate>2021-13-45</pubDate>",
        ],
        channel="<title>t</title><lastBuildDate>Tue, 07 Sep 2021 10:00:00 GMT</lastBuildDate>",
    ),
    "atom_basic": _atom(
        [
            '<title>e1</title><id>tag:x,2020:1</id><link href="http://e.com/1"/><link rel="enclosure" href="/f.mp3" type="audio/mpeg" length="5"/><updated>2020-01-02T00:00:00Z</updated><published>2020-01-01T00:00:00+01:00</published><author><name>N</name><email>n@x.com</email><uri>/me</uri></author><category term="t1" label="L1"/><category label="L2"/><summary>sum</summary><content type="html">&lt;p&gt;html&lt;/p&gt;</content>',
            '<title type="text">e2 &lt;b&gt;</title><id>http://e.com/only-id</id><content>plain text\n\nmore</content>',
            '<id>urn:uuid:1</id><link rel="self" href="http://e.com/self"/><link rel="alternate" type="application/pdf" href="http://e.com/pdf"/><content src="http://e.com/src" type="text/html"/>',
            '<title>x</title><link href="rel/2" xml:base="http://other.example/a/"/><content type="html" xml:base="http://cbase.example/">y</content>',
        ]
    ),
    "atom_lang": _atom(['<title xml:lang="ja">t</title><id>i</id>'], extra=' xml:lang="en"'),
    "atom_feed_link": _atom(
        ["<title>x</title>"],
        head='<id>http://e.com/feed-id</id><title>T</title><link rel="self" href="http://e.com/self"/>',
    ),
    "atom_feed_link2": _atom(
        ["<title>x</title>"],
        head='<title>T</title><link href="http://e.com/alt"/><id>http://e.com/feed-id</id>',
    ),
    "rdf": _DECL
    + '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel rdf:about="http://e.com/"><title>R</title><link>http://e.com/</link><items><rdf:Seq><rdf:li rdf:resource="http://e.com/1"/></rdf:Seq></items></channel><item rdf:about="http://e.com/1"><title>one</title><link>http://e.com/1</link><dc:date>2020-01-01</dc:date></item></rdf:RDF>',
    "rss091": _DECL
    + '<rss version="0.91"><channel><title>old</title><item><title>a</title><link>http://e.com/a</link></item></channel></rss>',
    "items_outside": _DECL
    + '<rss version="2.0"><channel><title>c</title></channel><item><title>out</title></item></rss>',
    "comments_in": _rss(["<title>a<!-- c --></title>", "<!-- x --><title>b</title>"]),
    "dup_titles": _rss(
        [
            "<title>one</title><title>two</title>",
            "<title></title><title>three</title>",
            "<dc:title>dc</dc:title><title>t</title>",
        ]
    ),
    "title_types": _rss(
        ['<title type="html">&lt;i&gt;x&lt;/i&gt;</title>', '<title type="text">a &amp;amp; b</title>']
    ),
    "ws": _rss(["<title>\n  spaced\ttitle  \n</title><link>\n http://e.com/ws \n</link>"]),
    "channel_desc": _rss(
        ["<title>a</title><description>d</description>"],
        channel="<title>t</title><itunes:summary>s</itunes:summary><description>cd</description>",
    ),
}
_EDGE: dict[str, bytes] = {name: text.encode("utf-8") for name, text in _EDGE_TEXTS.items()}
_EDGE["latin1_decl"] = (
    _rss(["<title>Caf\u00e9 \u00fcber</title>"])
    .replace('encoding="utf-8"', 'encoding="iso-8859-1"')
    .encode("latin-1")
)
_EDGE["cp1252_decl"] = (
    _rss(["<title>\u201cquoted\u201d \u20ac</title>"])
    .replace('encoding="utf-8"', 'encoding="windows-1252"')
    .encode("cp1252")
)
_EDGE["no_declaration"] = _rss(["<title>Caf\u00e9 \u4e2d\u6587</title>"]).replace(_DECL, "").encode("utf-8")
_EDGE["gb2312"] = (
    _rss(["<title>\u4e2d\u6587</title>"]).replace('encoding="utf-8"', 'encoding="gb2312"').encode("gb2312")
)
_EDGE["title_gate_resets"] = _rss(
    [
        '<title>a</title><source url="http://s.example/">S</source><title>b</title>',
        "<title>c</title><image>http://e.example/i.png</image><title>d</title>",
        "<title>e</title><image><url>http://e.example/i.png</url></image><title>f</title>",
    ]
).encode("utf-8")
_EDGE["bom_utf8"] = b"\xef\xbb\xbf" + _rss(["<title>bom</title>"]).encode("utf-8")
# Declarations feedparser's regex reads differently from an XML parser: the declared encoding must not win.
_EDGE["spaced_declaration"] = (
    b'<?xml version="1.0" encoding = "iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>Caf\xe9</title></item></channel></rss>"
)
_EDGE["two_encodings"] = (
    b'<?xml version="1.0" encoding="iso-8859-1"?><?foo encoding="utf-8"?><rss version="2.0"><channel>'
    b"<title>t</title><item><title>Caf\xc3\xa9</title></item></channel></rss>"
)


@pytest.mark.parametrize(
    "content_type", ["", "application/rss+xml; charset=utf-8", "text/xml", "application/xml"]
)
@pytest.mark.parametrize("name", sorted(_EDGE))
def test_fast_path_equals_feedparser_on_edge_cases(name: str, content_type: str) -> None:
    body, url = _EDGE[name], "http://src.example/dir/" + name
    headers = {"Content-Type": content_type} if content_type else {}
    outcomes = []
    for use_fast in (False, True):
        saved, fast.ENABLED = fast.ENABLED, use_fast
        try:
            outcomes.append(_without_fingerprints(parse_feed(body, headers, url, "src")))
        finally:
            fast.ENABLED = saved
    want, got = outcomes
    assert list(_differences(got, want)) == []


def test_edge_cases_are_mostly_taken() -> None:
    taken = [name for name, body in _EDGE.items() if fast.parse(body, "", "http://src.example/") is not None]
    assert len(taken) >= len(_EDGE) - 2, sorted(set(_EDGE) - set(taken))


# What a release that moves things looks like to our imports (feedparser itself keeps its own references):
# the module as we import it lacks a name, or has the class without an attribute, or the version moved on.
MOVED = "import sys, types; sys.modules[{module!r}] = types.SimpleNamespace(**{{k: v for k, v in vars({module}).items() if k != {name!r}}})"


@pytest.mark.parametrize("change", [
    MOVED.format(module="feedparser.urls", name="_urljoin"),
    MOVED.format(module="feedparser.mixin", name="_FeedParserMixin")
    + "; sys.modules['feedparser.mixin']._FeedParserMixin = type('_FeedParserMixin', (), {})",
    "feedparser.__version__ = '6.1.0'",
])
def test_a_feedparser_whose_internals_moved_turns_the_fast_path_off(change: str) -> None:
    """A release that moves a private name the fast path ports (or any version outside 6.0.x) must not
    break `import aggregator.parse`: the fast path stays off and feedparser parses everything."""
    import subprocess
    import sys

    script = (
        f"import feedparser, feedparser.mixin, feedparser.urls\n{change}\n"
        "from aggregator.parse import fast, feedparser_private, parse_feed\n"
        "assert fast is None and not feedparser_private.AVAILABLE, feedparser_private.REASON\n"
        f"feed = parse_feed(open({str(CORPUS / 'feeds/feedjira/TechCrunch.xml')!r}, 'rb').read(), {{}}, "
        "'https://tc.example/feed', '')\n"
        "print(len(feed.articles), feedparser_private.REASON)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    count, reason = out.stdout.split(" ", 1)
    assert int(count) == 20 and "feedparser" in reason
