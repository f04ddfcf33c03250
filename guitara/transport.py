"""daphne's TCP connections write at once when nothing is waiting to be sent.

Twisted buffers every write and registers the socket with the event loop, which
sends on the next turn and unregisters it: two selector changes per message.
One event to thousands of operator sockets spent about 40% of the server's time
in that registration (`add_writer`). Here a connection whose buffer is empty
sends right away, the way asyncio's own transports do; whatever the kernel
does not take (a slow reader, a full socket buffer) is buffered and written by
Twisted as before, so order and back-pressure are unchanged. TLS connections
(none here: TLS ends at the proxy) keep Twisted's path.

daphne's requests also skip Twisted's form parsing: for every POST with a body,
Twisted read its Content-Type with the `email` package and, for a form, parsed
the whole body into `request.args`, which daphne never reads (it hands the raw
body to Django, which parses it itself). That header parsing alone was about 5%
of a daphne's time serving transitions; a large form upload was held twice.

`install()` switches the TCP ports daphne opens to this connection class and
daphne's HTTP requests to that request class; it runs when the ASGI
application is imported inside daphne (the Twisted reactor is already there)
and does nothing under any other server.
"""

from __future__ import annotations

import sys


def install() -> bool:
    """Use `EagerServer` for the TCP ports opened from now on (daphne only)."""
    if "twisted.internet.reactor" not in sys.modules:
        return False
    from twisted.internet import tcp

    if tcp.Port.transport is not _eager_server_class():
        tcp.Port.transport = _eager_server_class()
    from daphne import http_protocol

    # daphne's factory reads this name for every connection it builds.
    if http_protocol.WebRequest is not _raw_body_request_class():
        http_protocol.WebRequest = _raw_body_request_class()
    return True


_request_class = None


def _raw_body_request_class():
    global _request_class
    if _request_class is None:
        from daphne.http_protocol import WebRequest

        class RawBodyRequest(WebRequest):
            def __init__(self, *args, **kwargs):
                kwargs["parsePOSTFormSubmission"] = False
                super().__init__(*args, **kwargs)

        _request_class = RawBodyRequest
    return _request_class


_class = None


def _eager_server_class():
    global _class
    if _class is None:
        from twisted.internet import tcp

        class EagerServer(tcp.Server):
            def write(self, data: bytes) -> None:
                if (
                    data
                    and not self.TLS
                    and self.connected
                    and not self.disconnecting
                    and not self._writeDisconnected
                    and not self._tempDataLen
                    and self.offset == len(self.dataBuffer)
                    and isinstance(data, bytes)
                ):
                    sent = self.writeSomeData(data)
                    if not isinstance(sent, int):
                        # The connection is gone: Twisted's path finds out and closes it.
                        sent = 0
                    if sent == len(data):
                        return
                    data = data[sent:]
                super().write(data)

            def writeSequence(self, iovec) -> None:
                iovec = list(iovec)
                if not self.TLS and all(isinstance(chunk, bytes) for chunk in iovec):
                    self.write(b"".join(iovec))
                else:
                    super().writeSequence(iovec)

        _class = EagerServer
    return _class
