"""The seed: the Sina Finance item the old system turned into a Hexo post, through our whole pipeline.

Our post must carry the seed's front matter field for field, except the lead image: the seed's
headimg/thumbnail was a QR-code app promo, so ours has none.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

from aggregator.cli import main
from conftest import SEED, RecordingServer, Route

SEED_TEXT = SEED.read_text(encoding="utf-8")


def split_post(text: str) -> tuple[dict[str, object], str]:
    _before, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_seed_item_becomes_the_seed_post_without_the_promo_image(tmp_path: Path, http_server: RecordingServer,
                                                                 capsys: object) -> None:
    front, body = split_post(SEED_TEXT)
    category, source_name, feed_title = front["categories"]  # type: ignore[misc]
    item = (f"<item><title>{escape(str(front['title']))}</title>"
            "<link>https://finance.sina.com.cn/china/gncj/2021-12-28/doc-ikyamrmz1597016.shtml</link>"
            f"<pubDate>{front['date']}</pubDate><description><![CDATA[{body}]]></description></item>")
    feed = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{feed_title}</title>'
            f"<link>https://finance.sina.com.cn/</link>{item}</channel></rss>")
    http_server.routes["/sina.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, feed.encode())
    config = tmp_path / "feeds.yaml"
    config.write_text(f"""\
output: {{dir: out, base_url: 'https://news.example.org/feeds/', hexo: {{dir: posts}}}}
state: state.db
categories:
  finance: {{title: {category}}}
sources:
  - {{url: '{http_server.url('/sina.xml')}', category: finance, name: {source_name}}}
""", encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    (post,) = (tmp_path / "posts").glob("*.md")
    ours, html = split_post(post.read_text(encoding="utf-8"))
    expected = {k: v for k, v in front.items() if k not in ("headimg", "thumbnail")}
    assert ours == expected
    assert parsedate_to_datetime(str(ours["date"])) == parsedate_to_datetime(str(front["date"]))
    assert "sinaimg.cn" not in html and "<img" not in html  # the QR promo is not the article's
    assert "责任编辑" not in html and "<font" not in html and "<!--" not in html
    assert html.count("<p>") == 10 and "驱动力" in html and "\u3000" not in html
