"""Split long HTML messages for Telegram's 4096-unit limit without breaking tags or entities.

Telegram counts UTF-16 code units (an emoji is 2). We measure the raw HTML, tags included, which
is stricter than Telegram's count after parsing and so always safe. Chunks end on line
boundaries where possible, else between words, else between characters; tags still open at a
chunk's end are closed there and reopened at the start of the next chunk.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

MAX_MESSAGE = 4096
_TOKEN = re.compile(r"<[^<>]*>|&(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z]+);|.", re.DOTALL)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_ANY_TAG = re.compile(r"<[^>]+>")


def to_plain(text: str) -> str:
    """Strip HTML tags and entities, for the console and for plain-text re-sends."""
    return html.unescape(_ANY_TAG.sub("", text))


def utf16_len(text: str) -> int:
    """Telegram measures text in UTF-16 code units, so astral characters count twice."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _tag(token: str) -> tuple[bool, str] | None:
    """(closing?, name) for a tag token; None for text and entities."""
    match = _TAG.match(token) if token.startswith("<") and token.endswith(">") else None
    return None if match is None else (match[1] == "/", match[2].lower())


def _apply(stack: tuple[tuple[str, str], ...], token: str) -> tuple[tuple[str, str], ...]:
    """The open tags (name, opening text) after a token; unmatched end tags are ignored."""
    tag = _tag(token)
    if tag is None:
        return stack
    closing, name = tag
    if not closing:
        return (*stack, (name, token))
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            return stack[:depth]
    return stack


def _closers(stack: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _visible(tokens: list[str]) -> bool:
    """Whether tokens show anything but whitespace (Telegram refuses empty messages)."""
    return any(_tag(token) is None and not token.isspace() for token in tokens)


@dataclass
class _Splitter:
    """Greedy packing of token runs into chunks, tracking the tags open at the cut."""

    limit: int
    chunks: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    size: int = 0
    stack: tuple[tuple[str, str], ...] = ()
    reopened: int = 0
    closed: str = ""

    def fits(self, tokens: list[str]) -> bool:
        """Whether tokens fit in the current chunk together with the closers they would need."""
        stack = self.stack
        for token in tokens:
            stack = _apply(stack, token)
        extra = sum(utf16_len(token) for token in tokens)
        return self.size + extra + utf16_len(_closers(stack)) <= self.limit

    def add(self, tokens: list[str]) -> None:
        for token in tokens:
            self.body.append(token)
            self.size += utf16_len(token)
            self.stack = _apply(self.stack, token)

    def cut(self) -> None:
        """End the chunk here (closing open tags) and reopen them in the next one."""
        self.closed = _closers(self.stack)
        self.chunks.append("".join(self.body) + self.closed)
        self.body = [opening for _, opening in self.stack]
        self.size, self.reopened = utf16_len("".join(self.body)), len(self.body)

    def place(self, tokens: list[str], finer: list[list[str]] | None) -> None:
        """Put a run in this chunk, else in a fresh one, else split it into `finer` runs."""
        if self.fits(tokens):
            self.add(tokens)
            return
        if _visible(self.body):
            self.cut()
            if self.fits(tokens):
                self.add(tokens)
                return
        if finer is None:  # one tag or character that cannot fit even alone: send it anyway
            self.add(tokens)
            return
        for run in finer:
            self.place(run, [[token] for token in run] if len(run) > 1 else None)

    def finish(self) -> list[str]:
        """Close the last chunk; a trailing run with nothing visible joins the one before."""
        closers = _closers(self.stack)
        if self.chunks and not _visible(self.body):
            previous = self.chunks[-1].removesuffix(self.closed)
            joined = previous + "".join(self.body[self.reopened :]) + closers
            if utf16_len(joined) <= self.limit:
                self.chunks[-1] = joined
            return self.chunks  # else drop it: only whitespace and empty tags, which show nothing
        self.chunks.append("".join(self.body) + closers)
        return self.chunks


def _words(tokens: list[str]) -> list[list[str]]:
    """Break a line's tokens after each space, so long lines are cut between words."""
    words: list[list[str]] = [[]]
    for token in tokens:
        words[-1].append(token)
        if token.isspace():
            words.append([])
    return [word for word in words if word]


def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split HTML into chunks of at most `limit` UTF-16 units, each with balanced tags."""
    if utf16_len(text) <= limit:
        return [text]
    splitter = _Splitter(limit)
    for line in text.splitlines(keepends=True):
        tokens = _TOKEN.findall(line)
        splitter.place(tokens, _words(tokens))
    return splitter.finish()


def message_chunks(text: str) -> list[str]:
    """The messages one text goes out as: split to fit, chunks with nothing visible dropped."""
    return [c for c in split_html(text) if to_plain(c).strip()] or [text]
