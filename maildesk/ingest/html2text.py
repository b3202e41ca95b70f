"""Render the HTML body of a mail as the plain text a person would read.

Pure: stdlib ``html.parser`` only.  Block elements become line breaks, ``<br>``
a newline, list items ``- item``, links ``text (url)`` when the url says more
than the text, quoted blocks ``> ``; scripts, styles and the head are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd", "table", "tr",
    "blockquote", "pre", "address", "article", "aside", "section", "header", "footer", "nav",
    "form", "fieldset", "figure", "figcaption", "hr", "main", "center", "tbody", "thead", "tfoot",
})
_DROPPED = frozenset({"script", "style", "head", "title", "noscript", "template", "xml", "svg", "object"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"})
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0\u200b\u3000]+")
_MANY_BLANKS = re.compile(r"\n{3,}")


class _TextRenderer(HTMLParser):
    """Collects rendered text; ``limit`` caps the characters kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.size = 0
        self.limit = limit
        self.dropped = 0
        self.pre = 0
        self.quote = 0
        self.links: list[tuple[str, int]] = []
        self.line_start = True

    # --- output -------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if not text or self.size >= self.limit:
            return
        if self.line_start and self.quote:
            text = "> " * self.quote + text
        self.out.append(text)
        self.size += len(text)
        self.line_start = text.endswith("\n")

    def _newline(self, force: bool = False) -> None:
        if force or not self.line_start:
            if force and self.line_start and self.quote:
                self.out.append(">" * self.quote)
            self.out.append("\n")
            self.size += 1
            self.line_start = True

    # --- parser callbacks -----------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self.dropped += tag not in _VOID
            return
        if self.dropped:
            return
        self._open(tag, dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED or self.dropped:
            return
        self._open(tag, dict(attrs))
        if tag not in _VOID:
            self.handle_endtag(tag)

    def _open(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "br":
            self._newline(force=True)
        elif tag == "li":
            self._newline()
            self._emit("- ")
        elif tag in ("td", "th") and not self.line_start:
            self._emit("  ")
        elif tag == "a" and len(self.links) < 64:
            self.links.append(((attrs.get("href") or "").strip(), len(self.out)))
        elif tag == "img" and attrs.get("alt") and not (attrs.get("src") or "").startswith("cid:"):
            self._emit(f"[{attrs['alt']}]")
        if tag in _BLOCKS:
            self._newline()
        if tag == "blockquote":
            self.quote += 1
        elif tag == "pre":
            self.pre += 1
        elif tag == "hr":
            self._emit("-" * 20)
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropped = max(0, self.dropped - 1)
            return
        if self.dropped:
            return
        if tag == "a" and self.links:
            self._close_link(*self.links.pop())
        elif tag == "blockquote":
            self._newline()
            self.quote = max(0, self.quote - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCKS or tag == "li":
            self._newline()

    def _close_link(self, href: str, start: int) -> None:
        text = "".join(self.out[start : start + 64]).strip()  # bounded: nested hostile links stay linear
        if not href or href.startswith(("#", "javascript:", "cid:")):
            return
        target = href[7:] if href.lower().startswith("mailto:") else href
        if target.rstrip("/") in (text.rstrip("/"), "") or text.rstrip("/").endswith(target.rstrip("/")):
            return
        self._emit(f" ({target})" if text else target)

    def handle_data(self, data: str) -> None:
        if self.dropped:
            return
        if self.pre:
            for index, line in enumerate(data.split("\n")):
                if index:
                    self._newline(force=True)
                self._emit(line)
            return
        text = _SPACE.sub(" ", data)
        if self.line_start or (self.out and self.out[-1].endswith(" ")):
            text = text.lstrip(" ")
        self._emit(text)


def _tidy(text: str) -> str:
    lines = [line.rstrip(" \t\u00a0\u3000") for line in text.split("\n")]
    return _MANY_BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


def html_to_text(html: str, *, limit: int = 2_000_000) -> str:
    """Plain text of an HTML document or fragment; never raises on malformed markup."""
    renderer = _TextRenderer(limit)
    try:
        renderer.feed(html)
        renderer.close()
    except Exception:  # html.parser is lenient, but a bug here must never lose the mail
        pass
    return _tidy("".join(renderer.out))[:limit]
