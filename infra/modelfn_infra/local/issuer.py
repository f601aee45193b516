"""The local API's token issuer (``auth: {mode: jwt}``): an RSA key and its JWKS under .modelfn/local/issuer/.

It stands in for the catalog's issuer locally (no network): ``modelfn tenants token NAME --local`` signs an access
token with the catalog's ``issuer`` and ``audience`` and the tenant's subject, and the local API verifies it with
``modelfn_runtime.tokens.TokenVerifier`` (the deployed authorizer's code) against this JWKS, fetched over HTTP by
PyJWT's ``PyJWKClient`` from ``jwks_app`` (which ``modelfn local start-api`` serves on 127.0.0.1 next to the API; PyJWT
fetches http(s) only). The private key is written 0600 and never leaves this directory.

Example:
    >>> issuer = LocalIssuer(Path(".modelfn/local/issuer")); issuer.ensure()        # doctest: +SKIP
    >>> token = issuer.token("acme", issuer="https://auth.example.com/", audience="models")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER_DIRECTORY = "issuer"
"""Next to the tenants file: .modelfn/local/issuer/."""
ALGORITHM = "RS256"
DEFAULT_TTL_S = 3600


class LocalIssuer:
    """One RSA signing key (``key.pem``) and its public JWKS (``jwks.json``) in ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.key_path = self.directory / "key.pem"
        self.jwks_path = self.directory / "jwks.json"

    def jwks_app(self):
        """A WSGI app answering every GET with the JWKS (what an issuer serves at its jwks_uri)."""
        self.ensure()

        def app(environ, start_response):
            body = self.jwks_path.read_bytes()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return app

    def ensure(self) -> None:
        """Create the key and its JWKS on first use (kept afterwards, so issued tokens stay valid)."""
        if self.key_path.is_file() and self.jwks_path.is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        partial = self.key_path.with_suffix(".tmp")
        partial.write_bytes(pem)
        os.chmod(partial, 0o600)
        partial.replace(self.key_path)
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        public.update(kid=_kid(public), use="sig", alg=ALGORITHM)
        self.jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))

    def token(self, subject: str, *, issuer: str, audience: str, claim: str = "sub", ttl_s: int = DEFAULT_TTL_S,
              extra: dict[str, Any] | None = None, now: float | None = None) -> str:
        """A signed access token for ``subject`` (in ``claim``), valid for ``ttl_s`` seconds."""
        self.ensure()
        issued = int(time.time() if now is None else now)
        claims = {"iss": issuer, "aud": audience, "sub": subject, claim: subject, "iat": issued, "nbf": issued,
                  "exp": issued + ttl_s, "token_use": "access", **(extra or {})}
        kid = json.loads(self.jwks_path.read_text())["keys"][0]["kid"]
        return jwt.encode(claims, self.key_path.read_bytes(), algorithm=ALGORITHM, headers={"kid": kid})


def _kid(public: dict[str, Any]) -> str:
    """The key's RFC 7638 thumbprint, so a new key gets a new ``kid``."""
    import base64
    import hashlib

    canonical = json.dumps({k: public[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
