"""Twisted's tutorial web counter ("Twisted Web in 60 seconds"), the
`spindle serve http` workload on twisted.web, for docs/bench/slowloris.sh.
Only the listening is adapted: a port from argv on 127.0.0.1, and
Twisted's log on stderr, whose `Site starting on PORT` line the scripts
read.

    python3 docs/bench/twisted_web.py [PORT]      # 0 (default): a free port
"""

import sys

from twisted.internet import endpoints, reactor
from twisted.python import log
from twisted.web import resource, server


class Counter(resource.Resource):
    isLeaf = True
    numberRequests = 0

    def render_GET(self, request):
        self.numberRequests += 1
        request.setHeader(b"content-type", b"text/plain")
        return "I am request #{}\n".format(self.numberRequests).encode("ascii")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    log.startLogging(sys.stderr)
    endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(server.Site(Counter()))
    reactor.run()
