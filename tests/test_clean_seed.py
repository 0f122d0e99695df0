"""The seed, as a golden test (issue 4): a Sina finance body comes out as exactly the article."""

from __future__ import annotations

import re

import pytest
from conftest import SEED
from test_clean_support import CORPUS, articles_of

from aggregator.clean import clean_article
from aggregator.model import Article, CleanConfig, FeedMeta

QR = "https://n.sinaimg.cn/finance/cece9e13/20200514/343233024.png"


def _paragraphs(html: str) -> list[str]:
    return re.findall(r"<p>(.*?)</p>", html, re.DOTALL)


_IMAGE = r'<img alt="[^"<]*" src="https://n\.sinaimg\.cn/[^"<]+" referrerpolicy="no-referrer">'


def _assert_like_the_seed(html: str, images: bool = False) -> None:
    # only plain paragraphs (or, in some corpus items, a paragraph holding one article image)
    para = f"<p>(?:[^<]*|{_IMAGE})</p>" if images else "<p>[^<]*</p>"
    assert re.fullmatch(f"({para}\n)*{para}", html), html
    for text in _paragraphs(html):
        assert text and not text.startswith(("\u3000", " ", "\u00a0", "&nbsp;"))
    for junk in ("font", "span", "<!--", "style", "class", "责任编辑", "新浪财经APP", QR, "keyword"):
        assert junk not in html


def test_seed_body_is_exactly_the_article() -> None:
    body = SEED.read_text("utf-8").split("---", 2)[2]
    article = Article(
        id="seed", source_url="https://rsshub.app/sina/finance", source_name="新浪财经",
        link="https://finance.sina.com.cn/china/gncj/2021-12-28/doc-ikyakumx6950423.shtml",
        title="国家移民管理局印发《_十四五_移民管理事业发展规划》", content_html=body,
        image=QR,  # the feed's own image field names the QR promo: it must not lead
        feed=FeedMeta(title="新浪财经－国內", link="https://finance.sina.com.cn/china/"),
    )
    explain: list[str] = []
    cleaned = clean_article(article, CleanConfig(), explain=explain)
    _assert_like_the_seed(cleaned.content_html)
    paragraphs = _paragraphs(cleaned.content_html)
    assert len(paragraphs) == 10
    assert paragraphs[0].startswith("近日，国家移民管理局依据")
    assert paragraphs[7].startswith("《规划》由国家移民管理局联合")
    assert paragraphs[8:] == ["来源：中国移民管理报", "作者：韩宏震 夏飞"]
    assert "全面提升科技创新驱动力、装备升级战斗力" in paragraphs[5]  # the stock link, reduced to its text
    assert cleaned.image == ""
    assert cleaned.summary.startswith("近日，国家移民管理局") and len(cleaned.summary) <= 201
    assert any("appendQr_wrap" in line and "sina" in line for line in explain)
    assert any("责任编辑" in line for line in explain)


@pytest.mark.parametrize("article", list(articles_of(CORPUS / "rsshub" / "sina-finance.xml")), ids=lambda a: a.id)
def test_rsshub_sina_items_come_out_like_the_seed(article: Article) -> None:
    cleaned = clean_article(article, CleanConfig())
    _assert_like_the_seed(cleaned.content_html, images=True)
    assert cleaned.image != QR
    assert cleaned.image == "" or cleaned.image in cleaned.content_html  # the article's own image
    assert len(_paragraphs(cleaned.content_html)) >= 1
