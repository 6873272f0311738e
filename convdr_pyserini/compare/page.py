"""The explorer page: one self-contained HTML file, the data embedded once as escaped JSON, the style and the script
inline (hand-written, `assets/explorer.css` and `assets/explorer.js`; no third-party code, no network request).

Escaping: the JSON sits in `<script type="application/json">`, where the HTML parser ends the element at the first
`</script` and treats `<!--` specially; so every `<`, `>` and `&` in it is written as a JSON `\\u` escape (the text
can then hold neither), and so are U+2028 and U+2029 (line terminators to older JavaScript parsers). The script
reads the data with `JSON.parse` and puts every text from the inputs into the page with `textContent`, never as
markup; the few texts the Python side writes into the HTML itself (the title) go through `html.escape`.
"""
from __future__ import annotations

import html
import json
from importlib import resources

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_TRANSLATE = str.maketrans(_JSON_ESCAPES)


def embedded_json(data: dict) -> str:
    """`data` as JSON that is safe inside a `<script>` element: no `<`, `>`, `&`, U+2028 or U+2029 left raw."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_TRANSLATE)


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def render_page(data: dict) -> str:
    """The whole page for `data` (an `Explorer`'s data)."""
    script, style = _asset("explorer.js"), _asset("explorer.css")
    for name, text in (("explorer.js", script), ("explorer.css", style)):
        if "</" in text or "<!--" in text:  # the inline code must not end its own element
            raise ValueError(f"assets/{name} contains '</' or '<!--'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        # the page may load nothing: no script, style, font, image or connection from anywhere but itself
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{html.escape(data['title'])}</title>\n<style>\n{style}</style>\n</head>\n<body>\n"
        "<noscript>This page is drawn by its inline script: allow JavaScript for this file.</noscript>\n"
        "<div id=\"app\"></div>\n"
        f"<script type=\"application/json\" id=\"explorer-data\">{embedded_json(data)}</script>\n"
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )
