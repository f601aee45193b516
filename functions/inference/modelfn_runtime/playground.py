"""``GET /``: the browser playground, one static page shipped in this package (no build step, no CDN).

The page lists every model with its signature from the card, sends Open Inference Protocol or
TensorFlow Serving requests from a form and shows the response and its latency. A model whose single
input is a small square image (8x8 for the digits demo) and whose single output holds at most
``MAX_BARS`` scores also gets a drawing pad and one bar per class. The cards travel inside the page as
JSON, so the page needs no second request to start.

Example:
    >>> page([]).headers["Content-Type"]
    'text/html; charset=utf-8'
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .http import HttpResponse
from .modelcard import ModelCard

PAGE_PATH = Path(__file__).with_name("playground.html")
PLACEHOLDER = "/*MODELS*/[]"
MAX_BARS = 32


def page(cards: list[ModelCard]) -> HttpResponse:
    """The playground HTML with ``cards`` embedded."""
    models = [
        {
            "name": card.name,
            "version": card.version,
            "description": card.description,
            "inputs": [{"name": s.name, "datatype": s.datatype, "shape": s.shape} for s in card.inputs],
            "outputs": [{"name": s.name, "datatype": s.datatype, "shape": s.shape} for s in card.outputs],
            "labels": card.extra.get("labels"),
        }
        for card in sorted(cards, key=lambda c: c.name)
    ]
    # "</" would end the <script> element early; "<\/" is the same JSON string
    embedded = json.dumps(models, separators=(",", ":")).replace("</", "<\\/")
    body = _template().replace(PLACEHOLDER, embedded).encode()
    return HttpResponse(200, body, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})


@lru_cache(maxsize=1)
def _template() -> str:
    text = PAGE_PATH.read_text()
    if PLACEHOLDER not in text:
        raise RuntimeError(f"{PAGE_PATH} lost its {PLACEHOLDER} placeholder")
    return text
