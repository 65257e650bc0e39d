"""Cluster PKI and TLS contexts for node-to-node and client-to-node links.

Every link in the cluster is TLS 1.3 with mutual authentication (SPEC "Threat model": two
nodes' traffic together reconstructs every secret, so every byte between parties is
encrypted and every peer authenticated). Trust comes from ONE cluster CA created at init;
no system trust store is ever loaded, so a certificate from any other CA is refused.

Identities live in the certificate's common name and as a DNS subjectAltName:
``node-0``, ``node-1``, ``node-2`` for the parties, ``client-<role>`` (``client-frontend``,
``client-admin``) for job clients. A dialer checks the server's identity through
``server_hostname`` (SAN match); an acceptor reads the peer's common name after the
handshake (:func:`peer_identity`) and decides what the connection may do.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY_DAYS = 3650


def node_name(party: int) -> str:
    """The certificate identity of party ``party`` (0, 1, 2)."""
    return f"node-{party}"


def client_name(role: str) -> str:
    """The certificate identity of a job client with ``role`` (``frontend``, ``admin``)."""
    return f"client-{role}"


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its PEM private key (redacted repr: the key is secret)."""

    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:
        return "CertKey(<cert>, <key redacted>)"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(name: str = "mpckdc cluster CA") -> CertKey:
    """A fresh self-signed ECDSA P-256 CA for one cluster."""
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(ca: CertKey, identity: str) -> CertKey:
    """A leaf certificate for ``identity`` (CN and DNS SAN), usable as TLS client and server."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _base_context(purpose: ssl.Purpose, ca_file: str | Path, cert_file: str | Path,
                  key_file: str | Path) -> ssl.SSLContext:
    proto = ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    ctx = ssl.SSLContext(proto)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Only the cluster CA: never load_default_certs(), so no other CA is trusted.
    ctx.load_verify_locations(cafile=str(ca_file))
    ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    return ctx


def server_context(ca_file: str | Path, cert_file: str | Path,
                   key_file: str | Path) -> ssl.SSLContext:
    """Acceptor side: TLS 1.3 only, a client certificate from the cluster CA is required."""
    ctx = _base_context(ssl.Purpose.CLIENT_AUTH, ca_file, cert_file, key_file)
    # No session tickets: links are long-lived, and a ticket would be unread data on a
    # connection whose dialer only writes.
    ctx.num_tickets = 0
    return ctx


def client_context(ca_file: str | Path, cert_file: str | Path | None,
                   key_file: str | Path | None) -> ssl.SSLContext:
    """Dialer side: TLS 1.3 only, the server must prove the expected node identity.

    ``cert_file=None`` builds a context without a client certificate (used by tests to show
    that such a connection is refused).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cafile=str(ca_file))
    if cert_file is not None:
        ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    return ctx


def peer_identity(sock: ssl.SSLSocket | ssl.SSLObject) -> str | None:
    """The common name of the authenticated peer certificate, or None."""
    cert = sock.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def _blocking_read(raw: socket.socket, view: memoryview) -> int:
    return raw.recv_into(view)


class TlsChannel:
    """TLS 1.3 over a blocking TCP socket through memory BIOs.

    Why not ``SSLSocket``: it reads one 16 KiB record per call with two syscalls each and
    writes one syscall per record. Here the raw socket is read in 1 MiB chunks (application
    read-ahead) and a whole frame is encrypted into memory and handed to the kernel in one
    send, so a large frame costs a few syscalls instead of hundreds. Same TLS, same
    certificates and checks (the handshake runs through the same ``SSLContext``).

    Use from one reader and one writer at most, never concurrently on the same direction;
    on our unidirectional peer links each channel has exactly one of them.
    """

    READ_CHUNK = 1 << 20

    def __init__(self, raw, ctx: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self.raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_side=server_side,
                                server_hostname=server_hostname)
        self._rbuf = bytearray(self.READ_CHUNK)
        self._rview = memoryview(self._rbuf)
        # Reads ciphertext from the raw socket into a buffer (``recv_into`` semantics). The
        # link reader puts its own here: it runs the engine's short timers while it waits
        # instead of waking another thread, and polls while a frame is due (mpc.links).
        self.read_raw: Callable[[socket.socket, memoryview], int] = _blocking_read
        self._handshake()

    def __repr__(self) -> str:
        return f"TlsChannel(fd={self.raw.fileno()})"

    def _handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = self.raw.recv(65536)
                if not data:
                    raise ConnectionError("connection closed during the TLS handshake") from None
                self._in.write(data)
            except ssl.SSLError:
                self._flush_quietly()  # let the peer see our alert
                raise
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.raw.sendall(data)

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except OSError:
            pass

    def fileno(self) -> int:
        return self.raw.fileno()

    def getpeercert(self):
        return self.obj.getpeercert()

    def settimeout(self, t: float | None) -> None:
        self.raw.settimeout(t)

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)

    def recv_into(self, view, nbytes: int = 0) -> int:
        """Blocking read of up to ``nbytes`` plaintext bytes; 0 at EOF."""
        n = nbytes or len(view)
        obj, bio = self.obj, self._in
        while True:
            # With no ciphertext buffered and no plaintext left, a read can only want more
            # bytes: go to the socket at once instead of raising SSLWantReadError (the
            # usual case once per frame).
            if bio.pending or obj.pending():
                try:
                    return obj.read(n, view)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return 0
            k = self.read_raw(self.raw, self._rview)
            if k == 0:
                return 0
            bio.write(self._rview[:k])

    def seal(self, buffers) -> bytes:
        """Encrypt ``buffers`` (in order) and return the TLS records to put on the wire."""
        for b in buffers:
            self.obj.write(b)
        return self._out.read()

    def close(self) -> None:
        self.raw.close()
