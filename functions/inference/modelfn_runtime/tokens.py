"""JWT access tokens checked against an issuer's JWKS: the one verifier the deployed Lambda authorizer
(``authorizer``) and the local API (``modelfn local start-api``) both use.

PyJWT does the work: ``PyJWKClient`` fetches the issuer's key set with a bounded timeout, caches it (and each
signing key by ``kid``) and refetches at most once per cooldown when an unknown ``kid`` arrives;
``jwt.decode`` checks the signature (RS256/ES256 only: never ``none`` or an HMAC algorithm chosen by the token),
``exp``/``nbf``/``iat`` with a small leeway, ``iss`` and ``aud``, and that the tenant claim is present.

A refusal is a ``TokenRefused`` whose ``status`` is 401 (no token, malformed, bad signature, expired, wrong
issuer or audience: get a new token) and whose message names the fix.

Example:
    >>> verifier = TokenVerifier("https://auth.example.com/", "models", "https://auth.example.com/.well-known/jwks.json")  # doctest: +SKIP
    >>> verifier.verify("Bearer eyJ...").subject                                                   # doctest: +SKIP
    'acme'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
"""Asymmetric algorithms only: the issuer signs with a private key and publishes the public half."""
JWKS_TIMEOUT_S = 3.0
"""Bound on one JWKS fetch (the authorizer's own timeout is a few seconds)."""
JWKS_LIFESPAN_S = 300
"""How long a fetched key set is reused before it is fetched again."""
LEEWAY_S = 30
"""Clock skew allowed on exp/nbf/iat."""

# The authorizer reads its settings from these (rendered by catalog/auth.py).
ISSUER_ENV = "MODELFN_JWT_ISSUER"
AUDIENCE_ENV = "MODELFN_JWT_AUDIENCE"
JWKS_ENV = "MODELFN_JWT_JWKS_URI"
CLAIM_ENV = "MODELFN_TENANT_CLAIM"

FIX = "send a current access token from the API's issuer as 'Authorization: Bearer <token>'"


class TokenRefused(Exception):
    """The token does not pass; ``status`` is the HTTP status the caller gets and ``str()`` names the fix."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    """The tenant claim's value: who the tenant is."""
    claims: dict[str, Any] = field(default_factory=dict)


class TokenVerifier:
    """Checks bearer tokens of one issuer and audience; keeps its JWKS client (and its cache) for its lifetime."""

    def __init__(self, issuer: str, audience: str, jwks_uri: str, tenant_claim: str = "sub", *,
                 timeout: float = JWKS_TIMEOUT_S, lifespan: float = JWKS_LIFESPAN_S) -> None:
        self.issuer, self.audience, self.tenant_claim = issuer, audience, tenant_claim
        self.jwks = jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=lifespan, cache_keys=True, timeout=timeout)

    @classmethod
    def from_environment(cls) -> "TokenVerifier":
        """The authorizer's verifier, from the variables the template sets."""
        return cls(os.environ[ISSUER_ENV], os.environ[AUDIENCE_ENV], os.environ[JWKS_ENV], os.environ.get(CLAIM_ENV, "sub"))

    def verify(self, authorization: str | None) -> VerifiedToken:
        """The token of an ``Authorization: Bearer <token>`` header value, verified; else ``TokenRefused``."""
        token = bearer(authorization)
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise TokenRefused("the issuer's signing keys could not be fetched; retry shortly", 503) from None
        except jwt.DecodeError:
            raise TokenRefused(f"the token is not a well-formed JWT (its header cannot be decoded); {FIX}") from None
        except jwt.PyJWKClientError as error:
            raise TokenRefused(f"the token's signing key is not the issuer's ({str(error)[:120]}); {FIX}") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=list(ALGORITHMS), audience=self.audience, issuer=self.issuer,
                                leeway=LEEWAY_S, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise TokenRefused(f"the token has expired; {FIX}") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(f"the token is not for this API (aud must be {self.audience!r}); {FIX}") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused(f"the token is from another issuer (iss must be {self.issuer!r}); {FIX}") from None
        except jwt.InvalidTokenError as error:
            raise TokenRefused(f"the token is not valid ({error}); {FIX}") from None
        subject = claims.get(self.tenant_claim)
        if not isinstance(subject, str) or not subject:
            raise TokenRefused(f"the token has no {self.tenant_claim!r} claim naming the tenant; ask the issuer's "
                               "operator to add it")
        return VerifiedToken(subject, claims)


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization`` header value; ``TokenRefused`` (401) when there is none or it is not Bearer."""
    if not authorization:
        raise TokenRefused(f"no access token; {FIX}")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or token.count(".") != 2:
        raise TokenRefused(f"the Authorization header is not 'Bearer <JWT>'; {FIX}")
    return token.strip()
