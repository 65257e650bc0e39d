"""Send one Kerberos request to a realm's KDCs and return the reply bytes (RFC 4120 §7.2).

UDP: the DER message is the datagram. TCP: a 4-byte big-endian length precedes the message
in both directions (RFC 4120 §7.2.2); the high bit of the length is reserved and must be 0.

Order of attempts, like MIT's ``sendto_kdc.c``: a request not larger than
``udp_preference_limit`` goes over UDP first, a larger one over TCP first; each KDC of the list
is tried in turn with the preferred transport and then the other, for ``passes`` rounds. A UDP
reply that is KRB-ERROR KRB_ERR_RESPONSE_TOO_BIG (52) makes the same KDC be asked again over
TCP at once (RFC 4120 §7.2.1). ``transport="udp"`` or ``"tcp"`` restricts to one transport.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence

from clients.krb5conf import DEFAULT_UDP_PREFERENCE_LIMIT
from kdc.messages import DecodeError, decode_message

KRB_ERR_RESPONSE_TOO_BIG = 52
#: Replies larger than this over TCP are refused (a sane cap; real replies are a few KiB).
MAX_TCP_REPLY = 1 << 20
MAX_UDP_REPLY = 65535


class KdcUnreachable(Exception):
    """No KDC of the realm answered; the message is MIT's wording."""

    def __init__(self, realm: str, detail: str = "") -> None:
        super().__init__(f"Cannot contact any KDC for realm '{realm}'")
        self.realm = realm
        self.detail = detail


def is_response_too_big(reply: bytes) -> bool:
    """True if ``reply`` is a KRB-ERROR with error-code 52 (RFC 4120 §7.2.1)."""
    if not reply or reply[0] != 0x7E:  # [APPLICATION 30] KRB-ERROR
        return False
    try:
        msg = decode_message(reply)
    except DecodeError:
        return False
    return getattr(msg, "error_code", None) == KRB_ERR_RESPONSE_TOO_BIG


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect_udp(family: int, address: tuple, *, tries: int = 8) -> socket.socket:
    """A UDP socket connected to ``address``: only datagrams from there are delivered.

    The kernel picks the local port at random; on loopback it can pick the KDC's own port when
    nobody listens there, and the socket then receives its own request as the reply. Such a
    self-connected socket is replaced (as TCP clients guard against self-connects)."""
    for _ in range(tries):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(address)
            if sock.getsockname()[:2] != sock.getpeername()[:2]:
                return sock
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise OSError(f"no local port other than the target's own for {address[0]}:{address[1]}")


def send_udp(message: bytes, host: str, port: int, timeout: float) -> bytes:
    """One datagram out, the first datagram back from that address within ``timeout``."""
    with connect_udp(_family(host), (host, port)) as s:
        s.settimeout(timeout)
        s.send(message)
        return s.recv(MAX_UDP_REPLY)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = s.recv(min(65536, n - len(chunks)))
        if not chunk:
            raise ConnectionError("KDC closed the TCP connection early")
        chunks += chunk
    return bytes(chunks)


def send_tcp(message: bytes, host: str, port: int, timeout: float) -> bytes:
    """One length-prefixed request on a fresh connection, one length-prefixed reply back."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">I", len(message)) + message)
        (length,) = struct.unpack(">I", _recv_exactly(s, 4))
        if length & 0x80000000 or length > MAX_TCP_REPLY:  # RFC 4120 §7.2.2 reserved bit
            raise ConnectionError(f"KDC sent an unacceptable TCP length {length:#x}")
        reply = _recv_exactly(s, length)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return reply


def send_to_kdcs(
    message: bytes,
    kdcs: Sequence[tuple[str, int]],
    *,
    realm: str = "",
    transport: str | None = None,
    udp_preference_limit: int = DEFAULT_UDP_PREFERENCE_LIMIT,
    timeout: float = 3.0,
    passes: int = 2,
    too_big: Callable[[bytes], bool] = is_response_too_big,
) -> bytes:
    """Return the first reply any KDC gives to ``message``; KdcUnreachable if none does."""
    if transport not in (None, "udp", "tcp"):
        raise ValueError("transport must be 'udp', 'tcp' or None")
    if transport is not None:
        order = [transport]
    elif len(message) > udp_preference_limit:
        order = ["tcp", "udp"]
    else:
        order = ["udp", "tcp"]
    last_error = ""
    for _ in range(max(1, passes)):
        for host, port in kdcs:
            for kind in order:
                try:
                    if kind == "udp":
                        reply = send_udp(message, host, port, timeout)
                        if too_big(reply):
                            if transport == "udp":
                                return reply  # the caller forced UDP: let it see the error
                            reply = send_tcp(message, host, port, timeout)
                    else:
                        reply = send_tcp(message, host, port, timeout)
                except (OSError, ConnectionError) as exc:
                    last_error = f"{kind} {host}:{port}: {exc}"
                    continue
                if reply:
                    return reply
    raise KdcUnreachable(realm, last_error)
