"""Drives the real `telnet` client under a pseudo-terminal, as a person
would: see the greeting, type a line, see it come back named by its
sender, then leave with /quit (or Ctrl-C). Every wait has a deadline.

usage: telnet_session.py PORT [quit|ctrl-c|ctrl-backslash]

ctrl-backslash: Ctrl-\\ makes telnet send IAC BRK (or ABORT) and
IAC DO TIMING-MARK, then discard all output until the server answers the
timing mark; the session must go on (a typed line comes back) before /quit.
"""
import os, pty, re, select, sys, time

port = sys.argv[1]
action = sys.argv[2] if len(sys.argv) > 2 else "quit"
pid, fd = pty.fork()
if pid == 0:
    os.execvp("telnet", ["telnet", "127.0.0.1", port])
buf = b""

def expect(pattern, timeout=15.0):
    global buf
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, buf)
        if m:
            buf = buf[m.end():]
            return m
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit("timed out waiting for %r; got %r" % (pattern, buf))
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                sys.exit("EOF waiting for %r; got %r" % (pattern, buf))
            buf += data

expect(rb"\* welcome, 127\.0\.0\.1:\d+: \d+ here \(you included\); /help lists the commands\r\n")
os.write(fd, b"hello from telnet\r")
expect(rb"<127\.0\.0\.1:\d+> hello from telnet\r\n")
if action == "ctrl-backslash":
    os.write(fd, b"\x1c")
    # The answer to the timing mark is what lets this through.
    os.write(fd, b"still here\r")
    expect(rb"<127\.0\.0\.1:\d+> still here\r\n")
    action = "quit"
if action == "quit":
    os.write(fd, b"/quit\r")
    expect(rb"\* bye\r\n")
else:
    # The terminal turns ^C into SIGINT; telnet sends IAC IP and flushes
    # its own output while waiting for a timing mark, so "* bye" is not
    # shown; the server closes all the same.
    os.write(fd, b"\x03")
expect(rb"Connection closed by foreign host")
for _ in range(100):
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    sys.exit("telnet did not exit")
print("ok")
