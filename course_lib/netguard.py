"""Block outbound network connections (the course runs offline; the tests prove it).

``install()`` wraps ``socket.socket.connect`` / ``connect_ex`` (which
``socket.create_connection``, urllib, pip and torch.hub all go through) so that
any attempt to reach a non-loopback address raises :class:`NetworkBlockedError`.  Loopback (127.0.0.0/8, ::1) and
Unix sockets stay open: Jupyter talks to its kernels over them.

The test suite installs it in its own process, and -- through
``tests/netguard_site/sitecustomize.py`` and ``COURSE_BLOCK_NETWORK=1`` -- in
every notebook kernel nbval starts.
"""

from __future__ import annotations

import ipaddress
import socket

_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_installed = False


class NetworkBlockedError(ConnectionRefusedError):
    """An outbound connection was attempted while the network guard was on."""


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False  # a host name that is not localhost
    return ip.is_loopback or ip.is_unspecified


def _guarded_connect(self, address):
    if self.family != getattr(socket, "AF_UNIX", None) and not _is_local(address):
        raise NetworkBlockedError(f"network access is blocked (offline course/tests): connect to {address!r}")
    return _original_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family != getattr(socket, "AF_UNIX", None) and not _is_local(address):
        raise NetworkBlockedError(f"network access is blocked (offline course/tests): connect to {address!r}")
    return _original_connect_ex(self, address)


def install() -> None:
    """Turn the guard on for this process (idempotent)."""
    global _installed
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    _installed = True


def is_installed() -> bool:
    return _installed
