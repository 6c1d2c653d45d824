"""Twisted's tutorial pub/sub chat (`PubProtocol`, "Writing Servers"), as
published, for the fan-out and paste comparisons (docs/bench/fanout.sh,
paste.sh). Only the listening is adapted: a port from argv on 127.0.0.1,
and Twisted's own log on stderr, whose `PubFactory starting on PORT` line
the scripts read.

    python3 docs/bench/twisted_chat.py [PORT]     # 0 (default): a free port
"""

import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols import basic
from twisted.python import log


class PubProtocol(basic.LineReceiver):
    def __init__(self, factory):
        self.factory = factory

    def connectionMade(self):
        self.factory.clients.add(self)

    def connectionLost(self, reason):
        self.factory.clients.remove(self)

    def lineReceived(self, line):
        for c in self.factory.clients:
            source = "<{}> ".format(self.transport.getHost()).encode("ascii")
            c.sendLine(source + line)


class PubFactory(protocol.Factory):
    def __init__(self):
        self.clients = set()

    def buildProtocol(self, addr):
        return PubProtocol(self)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    log.startLogging(sys.stderr)
    endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(PubFactory())
    reactor.run()
