"""Deterministic farm of realistic RSS 2.0 / Atom feeds for the benchmark; writes files, serves nothing.

Everything is a function of (seed, n, hosts, epoch, generation): feed i lives on host i % hosts,
shows a rolling window of its items (newest first), and generation g adds 1-3 items to 5 % of
the feeds (chosen by random.Random(f"{seed}:gen:{g}")), dropping as many old ones. Each feed
file is written as `<www>/<port>/feeds/<i>.xml` plus a pre-compressed `.xml.gz` (nginx
gzip_static), with a deterministic mtime so ETag/Last-Modified are reproducible too.

    python bench/farm.py generate --dir /tmp/farm --n 1000 --seed 1
    python bench/farm.py mutate --dir /tmp/farm --to-gen 1     # prints the added items as JSON
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

STEADY_FRACTION = 0.05
BASE_PORT = 18100

_EN_WORDS = (  # noqa: SIM905 - word lists read better as prose
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so what no out up said more can who "
    "them some could time these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down should because each "
    "just those people how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year off come since "
    "against go came right used take three market policy data energy city report network system open source "
    "research climate election model release security update government company science water health school"
).split()
_ZH_CHARS = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么"
    "心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分"
    "将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被"
    "走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员"
    "经济市场科技数据报告网络系统研究气候能源城市政策发布安全更新公司教育健康交通环境文化旅游体育"
)
_JA_WORDS = (  # noqa: SIM905
    "東京 大阪 日本 政府 経済 市場 技術 研究 発表 会社 社会 文化 ニュース データ システム ネットワーク "
    "エネルギー セキュリティ アップデート 今日 昨日 新しい 大きな 小さな 多くの 人々 世界 時間 問題 情報 "
    "は が を に で と も の から まで より です ます ました でした という ことが ために について によると "
    "しかし また さらに そして 一方 今回 今年 来年 昨年 発売 開始 予定 調査 結果 影響 対応 利用 提供"
).split()
_AUTHORS = ("Alice Chen", "Bob Smith", "王小明", "李华", "佐藤花子", "田中太郎", "Maria Garcia", "Newsroom")
_TAGS = ("tech", "science", "world", "business", "culture", "sports", "经济", "科技", "経済", "テクノロジー")
_FONTS = ("Georgia, serif", "'Helvetica Neue', Arial", "'PingFang SC', 'Microsoft YaHei'", "'Hiragino Sans'")


@dataclass(frozen=True)
class FeedSpec:
    """Fixed shape of one feed: where it lives and what its items look like."""

    index: int
    host: int
    fmt: str  # "rss" or "atom"
    lang: str  # "en", "zh" or "ja"
    window: int  # items shown
    item_bytes: int  # target size of one item's HTML
    spacing_s: int  # time between two base items


@dataclass(frozen=True)
class Item:
    """One item as the farm publishes it; also what the benchmark checks outputs against."""

    feed: int
    seq: int
    guid: str
    link: str
    title: str
    published: datetime
    html: str


@dataclass(frozen=True)
class Farm:
    seed: int
    n: int
    hosts: int
    base_port: int
    epoch: datetime

    def port(self, host: int) -> int:
        return self.base_port + host

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port(i % self.hosts)}/feeds/{i}.xml"

    def path(self, root: Path, i: int) -> Path:
        return root / "www" / str(self.port(i % self.hosts)) / "feeds" / f"{i}.xml"


def feed_spec(farm: Farm, i: int) -> FeedSpec:
    rng = random.Random(f"{farm.seed}:feed:{i}")
    fmt = "rss" if rng.random() < 0.6 else "atom"
    lang = rng.choices(("en", "zh", "ja"), weights=(5, 3, 2))[0]
    window = rng.randint(10, 108)  # mean 59 items
    size = rng.triangular(16_000, 262_000, 20_000)  # mean ~120 KB once written
    return FeedSpec(i, i % farm.hosts, fmt, lang, window, max(350, int(size / window) - 250),
                    rng.choice((900, 3600, 4 * 3600, 12 * 3600)))


_POOLS: dict[tuple[int, str], list[str]] = {}


def _sentences(seed: int, lang: str) -> list[str]:
    """A pool of sentences per language, built once: items draw from it (fast and deterministic)."""
    key = (seed, lang)
    if key not in _POOLS:
        rng = random.Random(f"{seed}:pool:{lang}")
        pool = []
        for _ in range(3000):
            if lang == "en":
                words = [rng.choice(_EN_WORDS) for _ in range(rng.randint(8, 22))]
                pool.append(" ".join(words).capitalize() + ".")
            elif lang == "zh":
                pool.append("".join(rng.choice(_ZH_CHARS) for _ in range(rng.randint(14, 40))) + "。")
            else:
                pool.append("".join(rng.choice(_JA_WORDS) for _ in range(rng.randint(8, 20))) + "。")
        _POOLS[key] = pool
    return _POOLS[key]


def _text(rng: random.Random, pool: list[str], k: int) -> str:
    sep = " " if pool[0].endswith(".") else ""
    return sep.join(rng.choice(pool) for _ in range(k))


def _item_html(farm: Farm, spec: FeedSpec, seq: int, rng: random.Random) -> str:
    pool = _sentences(farm.seed, spec.lang)
    h, i = spec.host, spec.index
    site = f"https://site{h}.example"
    parts = [f'<p style="font-family:{rng.choice(_FONTS)};color:#333">{_text(rng, pool, 2)}</p>']
    if rng.random() < 0.7:
        parts.append(f'<p><img src="/images/{i}/{seq}-a.jpg" alt="{escape(_text(rng, pool, 1)[:20])}" '
                     f'style="max-width:100%;border:0" onerror="this.remove()"></p>')
    if rng.random() < 0.5:
        parts.append(f'<figure style="margin:0"><img src="https://cdn{h % 9}.example.net/img/{i}/{seq}.png" '
                     f'width="640" height="360" loading="lazy"><figcaption>{_text(rng, pool, 1)}'
                     f'</figcaption></figure>')
    # Budget in UTF-8 bytes (CJK is 3 bytes a character); Atom escaping adds about a sixth.
    budget = spec.item_bytes * (0.85 if spec.fmt == "atom" else 1.0) - 900
    size = sum(len(p.encode()) for p in parts)
    while size < budget:
        roll = rng.random()
        if roll < 0.6:
            block = f'<p style="line-height:1.6;margin:0 0 1em">{_text(rng, pool, rng.randint(2, 5))}</p>'
        elif roll < 0.7:
            block = f"<h2>{_text(rng, pool, 1)[:40]}</h2>"
        elif roll < 0.8:
            block = ("<ul>" + "".join(f"<li>{_text(rng, pool, 1)}</li>" for _ in range(rng.randint(2, 5)))
                     + "</ul>")
        elif roll < 0.88:
            block = (f'<p><a href="{site}/{i}/posts/{max(0, seq - rng.randint(1, 9))}.html" '
                     f'target="_blank">{_text(rng, pool, 1)[:30]}</a> <span style="color:red">'
                     f"{_text(rng, pool, 1)}</span></p>")
        elif roll < 0.95:
            block = f"<blockquote><p>{_text(rng, pool, 2)}</p></blockquote>"
        else:
            block = (f'<p><img src="images/inline-{seq}-{size}.gif" width="300"> '
                     f'<a href="../tag/{rng.choice(_TAGS)}">{rng.choice(_TAGS)}</a></p>')
        parts.append(block)
        size += len(block.encode())
    if rng.random() < 0.15:
        parts.append('<iframe src="https://www.youtube.com/embed/dQw4w9WgXcQ" width="560" height="315" '
                     'frameborder="0" allowfullscreen></iframe>')
    parts.append(f"<script>window.dataLayer=window.dataLayer||[];dataLayer.push({{feed:{i},item:{seq}}});"
                 f"</script>")
    parts.append(f'<div class="share-buttons" style="display:flex;gap:8px">'
                 f'<a href="https://twitter.com/intent/tweet?url={site}/{i}/posts/{seq}.html">Tweet</a>'
                 f'<a href="https://www.facebook.com/sharer/sharer.php?u={site}/{i}/posts/{seq}.html">Share</a>'
                 f'<a href="https://service.weibo.com/share/share.php?url={site}/{i}/posts/{seq}.html">微博</a>'
                 f"</div>")
    parts.append(f'<img src="https://pixel.tracker{h % 7}.example/t.gif?f={i}&amp;s={seq}&amp;utm_source=rss" '
                 f'width="1" height="1" style="display:none" alt="">')
    return "\n".join(parts)


def added_per_gen(farm: Farm, gen: int) -> dict[int, int]:
    """Feeds that gain items in generation `gen` (>= 1) and how many (1-3)."""
    rng = random.Random(f"{farm.seed}:gen:{gen}")
    count = max(1, round(farm.n * STEADY_FRACTION))
    return {i: rng.randint(1, 3) for i in sorted(rng.sample(range(farm.n), count))}


def _additions(farm: Farm, gen: int) -> dict[int, list[tuple[int, int]]]:
    """For each feed, the (generation, count) of every addition up to `gen`."""
    out: dict[int, list[tuple[int, int]]] = {}
    for g in range(1, gen + 1):
        for i, k in added_per_gen(farm, g).items():
            out.setdefault(i, []).append((g, k))
    return out


def feed_items(farm: Farm, spec: FeedSpec, additions: list[tuple[int, int]]) -> list[Item]:
    """The items the feed shows at that point, newest first."""
    dated: list[tuple[int, datetime]] = [
        (s, farm.epoch - timedelta(seconds=(spec.window - 1 - s) * spec.spacing_s)) for s in range(spec.window)
    ]
    seq = spec.window
    for g, k in additions:
        for j in range(k):  # newer than every base item, in order, never in the future
            dated.append((seq, farm.epoch + timedelta(minutes=10 * g, seconds=j)))
            seq += 1
    shown = dated[-spec.window:]
    return [_item(farm, spec, s, when) for s, when in reversed(shown)]


def _item(farm: Farm, spec: FeedSpec, seq: int, when: datetime) -> Item:
    rng = random.Random(f"{farm.seed}:item:{spec.index}:{seq}")
    pool = _sentences(farm.seed, spec.lang)
    title = f"{_text(rng, pool, 1)[:60].rstrip('. 。')} #{spec.index}-{seq}"
    link = f"https://site{spec.host}.example/{spec.index}/posts/{seq}.html"
    guid = f"site{spec.host}-{spec.index}-{seq}"
    return Item(spec.index, seq, guid, link, title, when, _item_html(farm, spec, seq, rng))


def render_feed(farm: Farm, spec: FeedSpec, items: list[Item]) -> bytes:
    site = f"https://site{spec.host}.example/"
    title = f"Bench feed {spec.index} ({spec.lang})"
    xml_lang = {"en": "en", "zh": "zh-CN", "ja": "ja"}[spec.lang]
    updated = items[0].published if items else farm.epoch
    if spec.fmt == "rss":
        out = [(f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
               f'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
               f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>\n<title>{escape(title)}</title>'
               f"<link>{site}</link><description>Synthetic feed for benchmarks</description>"
               f"<language>{xml_lang}</language><lastBuildDate>{format_datetime(updated)}</lastBuildDate>\n")]
        for it in items:
            out.append(f"<item><title>{escape(it.title)}</title><link>{it.link}</link>"
                       f'<guid isPermaLink="false">{it.guid}</guid><pubDate>{format_datetime(it.published)}'
                       f"</pubDate><dc:creator>{_AUTHORS[it.seq % len(_AUTHORS)]}</dc:creator>"
                       f"<category>{_TAGS[it.seq % len(_TAGS)]}</category>"
                       f"<description>{escape(it.title)}</description>"
                       f"<content:encoded><![CDATA[{it.html}]]></content:encoded></item>\n")
        out.append("</channel></rss>\n")
    else:
        out = [(f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
               f"xml:lang={quoteattr(xml_lang)} xml:base={quoteattr(site)}>\n<title>{escape(title)}</title>"
               f"<id>tag:site{spec.host}.example,2026:{spec.index}</id><updated>{updated.isoformat()}</updated>"
               f'<link rel="alternate" href="{site}"/><link rel="self" href="{farm.url(spec.index)}"/>\n')]
        for it in items:
            out.append(f"<entry><title>{escape(it.title)}</title><id>tag:site{spec.host}.example,2026:"
                       f'{spec.index}/{it.seq}</id><link rel="alternate" href="{it.link}"/>'
                       f"<updated>{it.published.isoformat()}</updated><published>{it.published.isoformat()}"
                       f"</published><author><name>{_AUTHORS[it.seq % len(_AUTHORS)]}</name></author>"
                       f'<category term="{_TAGS[it.seq % len(_TAGS)]}"/>'
                       f'<content type="html">{escape(it.html)}</content></entry>\n')
        out.append("</feed>\n")
    return "".join(out).encode()


def write_feed(farm: Farm, root: Path, i: int, additions: list[tuple[int, int]]) -> int:
    spec = feed_spec(farm, i)
    body = render_feed(farm, spec, feed_items(farm, spec, additions))
    path = farm.path(root, i)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Deterministic mtime (epoch + last change) so nginx's ETag and Last-Modified are reproducible.
    stamp = farm.epoch.timestamp() + (additions[-1][0] * 600 if additions else 0)
    for target, data in ((path, body), (path.with_name(path.name + ".gz"), gzip.compress(body, 6, mtime=0))):
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, target)
    return len(body)


def load(root: Path) -> tuple[Farm, int]:
    meta = json.loads((root / "farm.json").read_text())
    farm = Farm(meta["seed"], meta["n"], meta["hosts"], meta["base_port"], datetime.fromisoformat(meta["epoch"]))
    return farm, meta["generation"]


def _save(root: Path, farm: Farm, gen: int, total: int | None = None) -> None:
    meta = {"seed": farm.seed, "n": farm.n, "hosts": farm.hosts, "base_port": farm.base_port,
            "epoch": farm.epoch.isoformat(), "generation": gen}
    old = root / "farm.json"
    if total is None and old.exists():
        total = json.loads(old.read_text()).get("bytes")
    meta["bytes"] = total
    (root / "farm.json").write_text(json.dumps(meta, indent=1))


def generate(root: Path, farm: Farm) -> int:
    """Write generation 0 of every feed; return the total uncompressed bytes."""
    total = sum(write_feed(farm, root, i, []) for i in range(farm.n))
    (root / "urls.txt").write_text("".join(farm.url(i) + "\n" for i in range(farm.n)))
    _save(root, farm, 0, total)
    return total


def mutate(root: Path, to_gen: int) -> list[Item]:
    """Move the farm to generation `to_gen` (forwards or back); return the items added on the way up."""
    farm, gen = load(root)
    before, after = _additions(farm, gen), _additions(farm, to_gen)
    for i in sorted(set(before) | set(after)):
        if before.get(i) != after.get(i):
            write_feed(farm, root, i, after.get(i, []))
    added: list[Item] = []
    for g in range(gen + 1, to_gen + 1):
        for i in added_per_gen(farm, g):
            spec = feed_spec(farm, i)
            shown = feed_items(farm, spec, after.get(i, []))
            seqs = _seqs_added(spec, after.get(i, []), g)
            added.extend(it for it in shown if it.seq in seqs)
    _save(root, farm, to_gen)
    return added


def _seqs_added(spec: FeedSpec, additions: list[tuple[int, int]], gen: int) -> set[int]:
    seq = spec.window
    for g, k in additions:
        if g == gen:
            return set(range(seq, seq + k))
        seq += k
    return set()


def item_json(it: Item) -> dict[str, object]:
    return {"feed": it.feed, "seq": it.seq, "guid": it.guid, "link": it.link, "title": it.title,
            "published": it.published.isoformat()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--dir", type=Path, required=True)
    gen.add_argument("--n", type=int, default=1000)
    gen.add_argument("--hosts", type=int, default=100)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--base-port", type=int, default=BASE_PORT)
    gen.add_argument("--epoch", default="2026-01-01T00:00:00+00:00",
                     help="date of the newest base item (ISO); steady items come 10 min per generation later")
    mut = sub.add_parser("mutate")
    mut.add_argument("--dir", type=Path, required=True)
    mut.add_argument("--to-gen", type=int, required=True)
    args = ap.parse_args()
    if args.cmd == "generate":
        epoch = datetime.fromisoformat(args.epoch).astimezone(UTC)
        farm = Farm(args.seed, args.n, min(args.hosts, args.n), args.base_port, epoch)
        total = generate(args.dir, farm)
        print(json.dumps({"feeds": farm.n, "bytes": total, "dir": str(args.dir)}))
    else:
        print(json.dumps([item_json(it) for it in mutate(args.dir, args.to_gen)], ensure_ascii=False))


if __name__ == "__main__":
    main()
