"""The cards of every model behind the API, for the function that serves ``/`` and ``/openapi.json``.

That function (the API's catch-all ``ServerFunction``) loads no model; ``MODELFN_CARD_URIS`` lists the
model directories whose ``modelcard.json`` it reads on the first request for ``/`` or ``/openapi.json``
(never for health checks, so they never depend on the store): ``s3://bucket/prefix/name/version/`` locations (only
the card object is read, a few KB; its IAM policy allows exactly those keys) or local directories.
A card that cannot be read is logged and left out, so health checks never depend on it.

Example:
    >>> [card.name for card in read_cards("models/digits/1")]        # doctest: +SKIP
    ['digits']
"""

from __future__ import annotations

import json
import os

from .artifacts import local_dir, split_s3_uri
from .environment import CARD_URIS
from .modelcard import CARD_FILE, ModelCard
from .observability import logger

CARD_URIS_ENV = CARD_URIS


def read_cards(uris: str) -> list[ModelCard]:
    """The cards under the comma-separated model directories ``uris``, in order; unreadable ones are skipped."""
    cards = []
    for uri in (part.strip() for part in uris.split(",")):
        if not uri:
            continue
        try:
            cards.append(ModelCard.from_dict(json.loads(_read_card(uri))))
        except Exception as error:  # noqa: BLE001 - one bad card must not take the playground down
            logger.warning("model card not readable", uri=uri, error=f"{type(error).__name__}: {error}")
    return cards


def cards_from_environment() -> list[ModelCard]:
    return read_cards(os.environ.get(CARD_URIS_ENV, ""))


def _read_card(uri: str) -> bytes:
    if uri.startswith("s3://"):
        from .aws import client  # boto3 with bounded timeouts, imported on first use

        bucket, prefix = split_s3_uri(uri)
        return client("s3").get_object(Bucket=bucket, Key=prefix + CARD_FILE)["Body"].read()
    return (local_dir(uri) / CARD_FILE).read_bytes()
