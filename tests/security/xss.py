"""H2: the XSS corpus and the checker that reads an HTML document the way a browser would look for active content.

``VECTORS`` are 60 classic payloads (OWASP filter-evasion cheat sheet, html5sec.org): script elements, event
attributes, ``javascript:``/``vbscript:``/``data:`` URLs, SVG and MathML with scripts, CSS ``expression()``,
frames, ``<meta http-equiv=refresh>``, broken and unterminated tags, entity-encoded and mixed-case variants.
``encoded_word`` wraps one in an RFC 2047 encoded word.

``find_active(html)`` parses with the stdlib ``html.parser`` and returns one line per active construct: an
element outside the small set our templates use (script, iframe, object, embed, svg, math, form, base, link,
style, frame…), any ``on*`` attribute, a URL attribute with an active scheme (anything but http(s), mailto,
cid and ``data:image/png|gif|jpeg`` on ``<img src>``), a ``style`` with ``expression(``/``url(``/``behavior``,
a ``<meta>`` other than charset/viewport, and HTML comments (our templates emit none).
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

VECTORS: tuple[str, ...] = (
    "<script>alert('x1')</script>",
    "<SCRIPT SRC=http://xss.example/x2.js></SCRIPT>",
    "<ScRiPt>alert(String.fromCharCode(88,51))</sCrIpT>",
    "<script/xss src=\"http://xss.example/x4.js\"></script>",
    "<<script>alert('x5');//<</script>",
    "<script>alert('x6')",  # unterminated
    "<img src=x onerror=alert('x7')>",
    "<IMG SRC=\"javascript:alert('x8');\">",
    "<IMG SRC=JaVaScRiPt:alert('x9')>",
    "<IMG SRC=`javascript:alert(\"x10\")`>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#49;&#49;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x31&#x32&#x27&#x29>",
    "<IMG SRC=\"jav&#x09;ascript:alert('x13');\">",
    "<IMG SRC=\" &#14;  javascript:alert('x14');\">",
    "<IMG \"\"\"><SCRIPT>alert(\"x15\")</SCRIPT>\">",
    "<img src=\"x\" onload=\"alert('x16')\"",  # unterminated tag
    "<body onload=alert('x17')>",
    "<BODY BACKGROUND=\"javascript:alert('x18')\">",
    "<svg onload=alert('x19')>",
    "<svg><script>alert('x20')</script></svg>",
    "<svg><a xlink:href=\"javascript:alert('x21')\"><text x=\"20\" y=\"20\">x21</text></a></svg>",
    "<svg><animate onbegin=alert('x22') attributeName=x dur=1s>",
    "<math><maction actiontype=\"statusline#\" xlink:href=\"javascript:alert('x23')\">x23</maction></math>",
    "<a href=\"javascript:alert('x24')\">click</a>",
    "<a href=\"JAVASCRIPT:alert('x25')\">click</a>",
    "<a href=\"java\tscript:alert('x26')\">tab</a>",
    "<a href=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert('x27')\">d</a>",
    "<a href=\"vbscript:MsgBox(\"x28\")\">vb</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgneDI5Jyk8L3NjcmlwdD4=\">data</a>",
    "<a href=\"data:image/svg+xml,<svg onload=alert('x30')>\">svg data</a>",
    "<iframe src=\"javascript:alert('x31')\"></iframe>",
    "<iframe srcdoc=\"<script>alert('x32')</script>\">",
    "<IFRAME SRC=http://xss.example/x33.html <",
    "<frameset><frame src=\"javascript:alert('x34')\"></frameset>",
    "<object data=\"javascript:alert('x35')\"></object>",
    "<embed src=\"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoJ3gzNicpPg==\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert('x37')\">",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0; URL=http://;URL=javascript:alert('x38');\">",
    "<div style=\"width: expression(alert('x39'));\">x39</div>",
    "<DIV STYLE=\"background-image: url(javascript:alert('x40'))\">",
    "<div style=\"behavior: url(x41.htc);\">x41</div>",
    "<STYLE>@import'http://xss.example/x42.css';</STYLE>",
    "<STYLE>li {list-style-image: url(\"javascript:alert('x43')\");}</STYLE><UL><LI>x43</UL>",
    "<LINK REL=\"stylesheet\" HREF=\"javascript:alert('x44');\">",
    "<BASE HREF=\"javascript:alert('x45');//\">",
    "<form action=\"javascript:alert('x46')\"><input type=submit></form>",
    "<button formaction=\"javascript:alert('x47')\">x47</button>",
    "<input onfocus=alert('x48') autofocus>",
    "<details open ontoggle=alert('x49')>",
    "<marquee onstart=alert('x50')>x50</marquee>",
    "<video><source onerror=\"alert('x51')\"></video>",
    "<table background=\"javascript:alert('x52')\">",
    "<td background=\"javascript:alert('x53')\">",
    "\"><script>alert('x54')</script>",
    "'><img src=x onerror=alert('x55')>",
    "</title><script>alert('x56')</script>",
    "</td></tr></table><script>alert('x57')</script>",
    "&lt;script&gt;alert('x58')&lt;/script&gt;",
    "<!--<script>alert('x59')</script>-->",
    "<scr<script>ipt>alert('x60')</scr</script>ipt>",
    "<img src=\"x` `<script>alert('x61')</script>\"` `>",
    "<a href=\"  javascript:alert('x62')\" onmouseover=\"alert('x62')\">x62</a>",
)
SHORT_VECTORS: tuple[str, ...] = tuple(v for v in VECTORS if len(v) <= 60)  # for filenames and names


def encoded_word(text: str, encoding: str = "b") -> str:
    """``text`` as one RFC 2047 encoded word (``b`` or ``q``), the way a client would fold a hostile name."""
    raw = text.encode("utf-8")
    if encoding == "b":
        return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="
    quoted = "".join(chr(b) if chr(b).isalnum() else f"={b:02X}" for b in raw)
    return f"=?utf-8?q?{quoted}?="


# Elements our templates emit; anything else in a produced document came from somewhere it should not.
ALLOWED_TAGS = frozenset({"html", "head", "meta", "title", "body", "table", "tbody", "tr", "td", "th", "p",
                          "br", "strong", "b", "em", "code", "a", "img", "div", "span", "ul", "li", "hr"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "background", "poster", "xlink:href",
                            "srcdoc", "data", "lowsrc", "dynsrc", "codebase", "cite", "longdesc", "usemap"})
SAFE_SCHEMES = ("http:", "https:", "mailto:", "cid:")
SAFE_IMAGE_DATA = re.compile(r"^data:image/(png|gif|jpeg);base64,[A-Za-z0-9+/=]*$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_ACTIVE_CSS = re.compile(r"expression\s*\(|url\s*\(|behavior\s*:|-moz-binding|javascript:|vbscript:|@import",
                         re.IGNORECASE)


def _scheme_problem(tag: str, name: str, value: str) -> str | None:
    squeezed = _CONTROL.sub("", value).lower()  # browsers drop tabs/newlines/controls inside a scheme
    if ":" not in squeezed.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        return None  # relative URL
    if squeezed.startswith(SAFE_SCHEMES):
        return None
    if tag == "img" and name == "src" and SAFE_IMAGE_DATA.match(value.strip()):
        return None
    return f"<{tag} {name}={value[:80]!r}>: active or unknown URL scheme"


class _ActiveFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"HTML comment <!--{data[:60]}-->")

    def handle_decl(self, decl: str) -> None:
        if decl.lower() != "doctype html":
            self.problems.append(f"declaration <!{decl[:60]}>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction <?{data[:60]}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"unknown declaration <![{data[:60]}")

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"<{tag}> element")
        values = {name: value or "" for name, value in attrs}
        if tag == "meta" and not (set(values) <= {"charset", "name", "content"}
                                  and values.get("name", "viewport") == "viewport"):
            self.problems.append(f"<meta {values}>")
        for name, value in values.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>: event attribute")
            elif name in URL_ATTRIBUTES and (problem := _scheme_problem(tag, name, value)):
                self.problems.append(problem)
            elif name == "style" and _ACTIVE_CSS.search(value):
                self.problems.append(f"<{tag} style={value[:80]!r}>: active CSS")


def find_active(html: str) -> list[str]:
    """Every active construct in ``html`` (empty when the document is inert)."""
    finder = _ActiveFinder()
    finder.feed(html)
    finder.close()
    return finder.problems
