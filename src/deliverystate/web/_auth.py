"""The shared secret: a token (query parameter or header), HTTP Basic credentials, or both.

Clickatell cannot sign its callbacks; what it can do is call a URL that holds
a token (``?token=...``) or Basic credentials (``https://user:pw@host/...``).
Either one passes when both are configured.  Comparisons take constant time
(:func:`hmac.compare_digest`), and both halves of Basic credentials are always
compared, so the time taken does not say which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request

__all__ = ["TOKEN_HEADER", "TOKEN_PARAM", "Guard"]

#: The header that may carry the shared token.
TOKEN_HEADER = "X-Deliverystate-Token"
#: The query parameter that may carry the shared token (never passed to the parser).
TOKEN_PARAM = "token"


class Guard:
    """The shared secret: a token, Basic credentials, or both (either one then passes)."""

    def __init__(self, token: str | None, basic_auth: tuple[str, str] | None) -> None:
        if token is not None and not token:
            raise ValueError("token must be a non-empty string or None")
        if basic_auth is not None and not all(basic_auth):
            raise ValueError("basic_auth must be a (user, password) pair of non-empty strings")
        self._token = None if token is None else token.encode("utf-8")
        self._basic = (
            None
            if basic_auth is None
            else (basic_auth[0].encode("utf-8"), basic_auth[1].encode("utf-8"))
        )

    @property
    def enabled(self) -> bool:
        """Whether any secret is configured."""
        return self._token is not None or self._basic is not None

    @property
    def wants_token(self) -> bool:
        """Whether a token is one of the accepted secrets (a page then asks for it in a form)."""
        return self._token is not None

    @property
    def challenge(self) -> dict[str, str]:
        """Headers of a 401: a Basic challenge, so a browser asks for the credentials."""
        if self._basic is None:
            return {}
        return {"WWW-Authenticate": 'Basic realm="deliverystate", charset="UTF-8"'}

    def allows(self, request: Request) -> bool:
        """Whether the request may pass; always true without a secret."""
        if not self.enabled:
            return True
        if self._token is not None:
            for offered in (
                request.query_params.get(TOKEN_PARAM),
                request.headers.get(TOKEN_HEADER),
            ):
                if offered is not None and hmac.compare_digest(
                    offered.encode("utf-8"), self._token
                ):
                    return True
        return self._basic is not None and self._basic_matches(request.headers.get("authorization"))

    def _basic_matches(self, header: str | None) -> bool:
        if header is None or self._basic is None:
            return False
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # both comparisons always run, so the time taken does not say which part was wrong
        user_ok = hmac.compare_digest(user, self._basic[0])
        password_ok = hmac.compare_digest(password, self._basic[1])
        return bool(colon) and user_ok and password_ok
