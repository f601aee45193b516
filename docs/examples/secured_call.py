"""Call a modelfn API whose catalog sets ``auth: {mode: iam}`` (SigV4, signed by botocore) or ``auth: {mode: jwt}``
(an OAuth2/OIDC access token). Only botocore and the standard library; tests/local/test_auth.py runs it.

    # iam: the tenant's IAM credentials (environment, profile or role) sign; its API key picks the usage plan
    python docs/examples/secured_call.py iam https://ID.execute-api.REGION.amazonaws.com/Prod/v2/models/digits/infer \\
        --api-key KEY --body '{"inputs": [...]}'
    # jwt: an access token from the API's issuer (locally: `modelfn tenants token NAME --local`)
    python docs/examples/secured_call.py jwt http://127.0.0.1:3000/v2/models/digits/infer --token "$TOKEN" --body @request.json

Example (as a library):
    >>> headers = sigv4_headers("POST", url, body, botocore.session.get_session().get_credentials(), "us-east-1")  # doctest: +SKIP
    >>> status, answer = call("POST", url, {**headers, "x-api-key": key}, body)                              # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import get_session


def sigv4_headers(method: str, url: str, body: bytes, credentials: Any, region: str,
                  headers: dict[str, str] | None = None) -> dict[str, str]:
    """The request's headers with botocore's SigV4 signature for API Gateway (service ``execute-api``). Every header
    passed in is signed: send exactly these headers (an ``x-api-key`` must be in ``headers`` to be signed with them)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def bearer_headers(token: str, api_key: str | None = None) -> dict[str, str]:
    """A jwt API's headers: the token; an API key too only with a Cognito user-pool authorizer (``user_pool_arn``)."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}", **({"x-api-key": api_key} if api_key else {})}


def call(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any]:
    """``(status, decoded JSON answer)``; 401 and 403 answers say what to fix in ``["error"]``."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("iam", "jwt"))
    parser.add_argument("url")
    parser.add_argument("--body", help="JSON request body, or @FILE (default: none, a GET)")
    parser.add_argument("--api-key", help="the tenant's API key (iam; jwt with a Cognito user pool)")
    parser.add_argument("--token", help="jwt: the access token")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    args = parser.parse_args(argv)
    body = None if args.body is None else (open(args.body[1:], "rb").read() if args.body.startswith("@") else args.body.encode())
    method = "POST" if body is not None else "GET"
    if args.mode == "iam":
        credentials = get_session().get_credentials()
        if credentials is None:
            print("error: no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile", file=sys.stderr)
            return 2
        headers = sigv4_headers(method, args.url, body or b"", credentials, args.region,
                                {"x-api-key": args.api_key} if args.api_key else None)
    else:
        if not args.token:
            print("error: --token is required for jwt", file=sys.stderr)
            return 2
        headers = bearer_headers(args.token, args.api_key)
    status, answer = call(method, args.url, headers, body)
    print(status, json.dumps(answer, indent=2))
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
