"""A standalone HTML page showing a digest as a chat would, for docs and research notes."""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ background: #dfe6ec; font: 15px/1.45 -apple-system, "Segoe UI", Roboto, sans-serif;
         margin: 0; padding: 24px 12px; }}
  .bubble {{ background: #fff; max-width: 560px; margin: 0 auto 12px; padding: 10px 14px;
             border-radius: 12px; box-shadow: 0 1px 1px rgba(0,0,0,.12);
             white-space: pre-wrap; word-wrap: break-word; }}
  .bubble img {{ width: 100%; border-radius: 8px; display: block; margin-bottom: 6px; }}
  code, pre {{ font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }}
</style>
</head>
<body>
<div class="bubble">{text}</div>
{photo}
</body>
</html>
"""


def summary_page(text: str, caption: str, image: str | None) -> str:
    """Wrap the digest's Telegram HTML (already escaped) and its chart in a chat-like page.

    Telegram's HTML subset (b, i, u, s, code, pre, a, blockquote) is valid HTML as it is.
    """
    photo = ""
    if image is not None:
        src = html.escape(image, quote=True)
        photo = f'<div class="bubble"><img src="{src}" alt="digest chart">{caption}</div>'
    return _PAGE.format(title="Stablewatch summary", text=text, photo=photo)
