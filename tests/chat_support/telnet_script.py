"""Drives the real `telnet` client under a pseudo-terminal through a
script of steps, as a person at a terminal would. Every wait has a
deadline; the script ends when telnet reports the connection closed and
exits.

usage: telnet_script.py PORT STEP...
  type=TEXT      type TEXT (UTF-8) and press Enter
  expect=REGEX   wait until the terminal shows REGEX (UTF-8, Python re)
  ctrl-c         press Ctrl-C

After the last step it waits for "Connection closed by foreign host" and
for telnet to exit, then prints "ok".
"""
import os, pty, re, select, sys, time

port = sys.argv[1]
steps = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["LANG"] = "C.UTF-8"
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


expect(rb"Escape character is '\^\]'\.\r\n")
for step in steps:
    if step.startswith("type="):
        os.write(fd, step[5:].encode() + b"\r")
    elif step.startswith("expect="):
        expect(step[7:].encode())
    elif step == "ctrl-c":
        os.write(fd, b"\x03")
    else:
        sys.exit("unknown step %r" % step)
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
