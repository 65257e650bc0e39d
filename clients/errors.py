"""Errors of the client library; ``str()`` of each is a message fit for the user.

None of them ever carries a key, a password or anything derived from one.
"""

from __future__ import annotations

from kdc.messages import constants as c
from kdc.messages.model import KrbError


class ClientError(Exception):
    """Any failure of a client operation."""


class KdcError(ClientError):
    """The KDC answered KRB-ERROR ``code`` (or the reply failed its integrity check, code 31).

    ``text`` is MIT's text for the code (``kdc.messages.constants.ERROR_TEXT``); ``message`` is
    what MIT's tools print (it names the principal for unknown clients and servers);
    ``e_text`` is the KDC's own e-text, if any; ``error`` the decoded KRB-ERROR.
    """

    def __init__(
        self,
        code: int,
        text: str | None = None,
        *,
        message: str | None = None,
        e_text: str | None = None,
        error: KrbError | None = None,
    ) -> None:
        self.code = code
        self.text = text if text is not None else c.error_text(code)
        self.message = message or self.text
        self.e_text = e_text
        self.error = error
        super().__init__(self.message)


class ReplyMismatch(ClientError):
    """A reply that does not answer our request (nonce or names differ) or is malformed."""


def kdc_error(error: KrbError, *, client: str = "", server: str = "") -> KdcError:
    """KdcError for a KRB-ERROR, with MIT's wording for unknown principals."""
    code = error.error_code
    message = None
    if code == c.KDC_ERR_C_PRINCIPAL_UNKNOWN and client:
        message = f"Client '{client}' not found in Kerberos database"
    elif code == c.KDC_ERR_S_PRINCIPAL_UNKNOWN and server:
        message = f"Server {server} not found in Kerberos database"
    return KdcError(code, message=message, e_text=error.e_text, error=error)
