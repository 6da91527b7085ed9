"""HTML parser: the page reduced to markdown-like text, then read as markdown.

Citations of an HTML source point into that text, which the index stores as the source's text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _HTMLToMarkdown(HTMLParser):
    """Reduce HTML to markdown-like text: h1-h6 become # headings, blocks become paragraphs."""

    SKIP = {"script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form",
            "head"}  # fmt: skip
    BLOCK = {"p", "div", "section", "article", "main", "ul", "ol", "table", "tr", "br",
             "blockquote", "pre", "aside", "figure", "dl", "dt", "dd"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
        elif self.skip_depth:
            return
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = int(tag[1])
            self.out.append("\n\n" + "#" * self.heading + " ")
        elif tag == "li":
            self.out.append("\n• ")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif self.skip_depth:
            return
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = None
            self.out.append("\n\n")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = re.sub(r"\s+", " ", data)
        if self.heading is not None:
            data = data.replace("\n", " ")
        self.out.append(data)


def html_to_markdown(source: str) -> str:
    """Markdown-like text of an HTML page; citations of HTML sources point into this text."""
    parser = _HTMLToMarkdown()
    parser.feed(source)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
