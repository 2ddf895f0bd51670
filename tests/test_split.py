"""Splitting long HTML for Telegram: line boundaries, balanced tags, UTF-16 lengths."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.delivery.split import split_html, utf16_len
from tests.harness.fake_telegram import parse_html

_TAGS = re.compile(r"<[^<>]*>")


def visible(chunk: str) -> str:
    """What a reader sees: tags stripped, entities decoded."""
    return html.unescape(_TAGS.sub("", chunk))


def test_short_text_is_one_chunk_unchanged() -> None:
    assert split_html("<b>BTC</b> &lt; 0") == ["<b>BTC</b> &lt; 0"]


def test_splits_on_line_boundaries() -> None:
    lines = [f"line {n:02d}" for n in range(10)]
    chunks = split_html("\n".join(lines), limit=30)
    assert all(utf16_len(chunk) <= 30 for chunk in chunks)
    assert all(chunk.endswith("\n") for chunk in chunks[:-1])  # never mid-line
    assert "".join(chunks) == "\n".join(lines)


def test_open_tags_are_closed_and_reopened() -> None:
    text = '<b>head</b>\n<a href="https://x.io">' + "\n".join(["abcdefghij"] * 6) + "</a>"
    chunks = split_html(text, limit=60)
    assert len(chunks) > 1
    for chunk in chunks:
        parse_html(chunk)  # raises on unbalanced tags, as Telegram would
    assert chunks[1].startswith('<a href="https://x.io">')
    assert chunks[0].endswith("</a>")


def test_long_line_is_cut_between_words_never_in_a_tag_or_entity() -> None:
    text = "<i>" + " ".join(["word&amp;co"] * 40) + "</i>"
    chunks = split_html(text, limit=50)
    for chunk in chunks:
        assert utf16_len(chunk) <= 50
        parse_html(chunk)
        assert "&amp;" in chunk and not re.search(r"&(?!amp;)", chunk)
    assert "".join(visible(c) for c in chunks) == visible(text)


def test_a_word_longer_than_the_limit_is_cut_between_characters() -> None:
    chunks = split_html("x" * 25, limit=10)
    assert chunks == ["x" * 10, "x" * 10, "x" * 5]


def test_emoji_count_as_two_units() -> None:
    chunks = split_html("🚨" * 6, limit=4)
    assert chunks == ["🚨🚨", "🚨🚨", "🚨🚨"]


def test_trailing_blank_lines_do_not_make_an_empty_message() -> None:
    chunks = split_html("a" * 8 + "\n" + "b" * 8 + "\n\n", limit=12)
    assert chunks == ["a" * 8 + "\n", "b" * 8 + "\n\n"]


# property tests ---------------------------------------------------------------------------------
_WORDS = st.sampled_from(
    ["BTC", "ETH", "funding", "&amp;", "&lt;", "&#128512;", "🚨", "✅", "−0.01%", "x" * 30]
)
_OPENERS = [
    "<b>",
    "<i>",
    "<u>",
    "<s>",
    "<code>",
    "<pre>",
    "<blockquote>",
    "<tg-spoiler>",
    '<a href="https://t.me/x">',
]


def _element(depth: int) -> st.SearchStrategy[str]:
    """Random Telegram-valid HTML: words, spaces and newlines, nested up to `depth` tags."""
    leaf = st.one_of(_WORDS, st.sampled_from([" ", " ", "\n", "\n\n"]))
    if depth == 0:
        return leaf
    inner = st.lists(_element(depth - 1), max_size=8).map("".join)
    tagged = st.tuples(st.sampled_from(_OPENERS), inner).map(
        lambda pair: f"{pair[0]}{pair[1]}</{pair[0][1:].split()[0].rstrip('>')}>"
    )
    return st.one_of(leaf, leaf, tagged)


_DOCUMENTS = st.lists(_element(3), min_size=1, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_DOCUMENTS, limit=st.integers(min_value=150, max_value=500))
def test_chunks_fit_balance_and_keep_the_visible_text(text: str, limit: int) -> None:
    parse_html(text)  # the generator only makes valid documents
    chunks = split_html(text, limit)
    assert all(utf16_len(chunk) <= limit for chunk in chunks)
    for chunk in chunks:
        parse_html(chunk)  # balanced, Telegram's subset
    joined, whole = "".join(visible(chunk) for chunk in chunks), visible(text)
    # an invisible tail that did not fit may be dropped
    assert joined == whole or (joined == whole[: len(joined)] and not whole[len(joined) :].strip())
    if len(chunks) > 1:
        assert all(visible(chunk).strip() for chunk in chunks)


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=3000), limit=st.integers(min_value=8, max_value=200))
def test_plain_text_of_any_characters_fits(text: str, limit: int) -> None:
    escaped = html.escape(text, quote=False)
    chunks = split_html(escaped, limit)
    assert all(utf16_len(chunk) <= limit for chunk in chunks)
    joined = "".join(visible(chunk) for chunk in chunks)
    assert joined == text or (joined == text[: len(joined)] and not text[len(joined) :].strip())
