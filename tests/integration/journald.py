#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Start a systemd-journald as a plain process when none is running.

The test machines have no systemd as PID 1, yet the integration tests read
the daemon's events back from a real journal. systemd-journald runs fine on
its own: it creates /run/systemd/journal/socket and keeps a runtime journal
under /run/log/journal that journalctl reads.

Usage:
    journald.py start --pid-file FILE   start one unless one listens; write
                                        its pid to FILE only if started here
    journald.py stop --pid-file FILE    stop the journald named in FILE
    journald.py status                  exit 0 when a journald listens
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

SOCKET_PATH = "/run/systemd/journal/socket"
JOURNALD = "/lib/systemd/systemd-journald"
START_TIMEOUT_SEC = 10.0
STOP_TIMEOUT_SEC = 5.0


def is_listening(path=SOCKET_PATH):
    """Return whether some process receives datagrams on the journal socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _is_journald(pid):
    """Return whether pid is a live systemd-journald, not a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state = stat[stat.rindex(")") + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return comm == "systemd-journal" and state != "Z"


def start():
    """Start a journald unless one listens; return its pid, or None."""
    if is_listening():
        return None
    if not os.access(JOURNALD, os.X_OK):
        raise RuntimeError(f"{JOURNALD} not found: install the Debian package 'systemd'")

    os.makedirs("/run/systemd/journal", exist_ok=True)
    # A session of its own and no inherited pipes, so that a test runner
    # waiting for its child's output does not wait for journald too.
    proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        if is_listening():
            return proc.pid
        if proc.poll() is not None:
            raise RuntimeError(f"{JOURNALD} exited with status {proc.returncode} before it listened")
        time.sleep(0.05)
    stop(proc.pid)
    raise RuntimeError(f"{JOURNALD} did not create {SOCKET_PATH} within {START_TIMEOUT_SEC:.0f} s")


def stop(pid):
    """Stop the journald with this pid, if it still runs."""
    if not _is_journald(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SEC
    while time.monotonic() < deadline:
        try:
            # Reaps it when it is our child; else its parent does.
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not _is_journald(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _read_pid_file(path):
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def main(argv):
    parser = argparse.ArgumentParser(description="Start or stop a journald for the tests.")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--pid-file", help="where the pid of a journald started here is kept")
    args = parser.parse_args(argv)

    if args.command == "status":
        return 0 if is_listening() else 1
    if not args.pid_file:
        parser.error("--pid-file is required")

    if args.command == "start":
        # A stale file from an earlier run must not make "stop" kill anything.
        if os.path.exists(args.pid_file):
            os.unlink(args.pid_file)
        try:
            pid = start()
        except RuntimeError as e:
            print(f"journald.py: {e}", file=sys.stderr)
            return 1
        if pid is None:
            print(f"journald already listens on {SOCKET_PATH}")
        else:
            with open(args.pid_file, "w", encoding="ascii") as f:
                f.write(f"{pid}\n")
            print(f"started systemd-journald, pid {pid}")
        return 0

    pid = _read_pid_file(args.pid_file)
    if pid is not None:
        stop(pid)
        print(f"stopped systemd-journald, pid {pid}")
        os.unlink(args.pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
