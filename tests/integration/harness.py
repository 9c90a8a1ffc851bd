# SPDX-License-Identifier: MIT
"""Shared parts of the integration tests.

Each test runs the real cbm365-watchd binary against the mock Elements API
(tests/mock/elements_mock.py) on 127.0.0.1 and reads the daemon's events
back from a real journal with journalctl. Every name and id a test puts into
a configuration carries a token unique to the test. Entries are found by
those fields (CBM365_TARGET, CBM365_CUSTOMER_ID), or by the daemon's _PID
after a journal cursor taken before the run, and never by time.

Environment:
    CBM365_WATCHD        the daemon binary (default: build/cbm365-watchd)
    CBM365_KEEP_TMPDIR   set to 1 to keep each test's directory for a look
"""

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import journald  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MOCK_SCRIPT = ROOT / "tests" / "mock" / "elements_mock.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

SCOPE = "elements.cbprotected.read.all"
MODULE_MAILBOX = 0
MODULE_ONEDRIVE = 2

USER_EVENTS = ("protection-lost", "protection-gained", "user-added", "user-removed", "user-changed")

# Seconds a test waits for journald to store what the daemon sent: journald
# reads its socket asynchronously, so an entry can appear shortly after the
# daemon has exited.
JOURNAL_SETTLE_SEC = 10.0
MOCK_START_SEC = 10.0

# Environment variables that would change what the daemon under test does.
_DAEMON_ENV_DROP = ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",
                    "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                    "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY",
                    "HTTPS_PROXY", "ALL_PROXY", "no_proxy", "NO_PROXY")


def daemon_binary():
    """Return the path of the daemon under test."""
    path = os.environ.get("CBM365_WATCHD") or str(ROOT / "build" / "cbm365-watchd")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"daemon binary {path} not found: build it or set CBM365_WATCHD")
    return path


def unique_token():
    return "it" + uuid.uuid4().hex[:12]


# ---------------------------------------------------------------- journal

_journald_pid = None


def ensure_journald():
    """Start a journald when none listens; it is stopped when this process exits."""
    global _journald_pid
    if _journald_pid is None and not journald.is_listening():
        _journald_pid = journald.start()
        atexit.register(stop_own_journald)


def stop_own_journald():
    """Stop the journald that ensure_journald() started, if any."""
    global _journald_pid
    if _journald_pid is not None:
        journald.stop(_journald_pid)
        _journald_pid = None


def _decode_value(value):
    # journalctl -o json writes non-UTF-8 or control-character values as
    # arrays of byte values, and a field set more than once as an array.
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return bytes(value).decode("utf-8", "surrogateescape")
        return [_decode_value(v) for v in value]
    return value


def journal_cursor():
    """Return the cursor of the newest journal entry, or None when it is empty."""
    out = subprocess.run(["journalctl", "-q", "--no-pager", "-n", "1", "-o", "json"],
                         capture_output=True, timeout=30, check=False)
    lines = out.stdout.splitlines()
    if not lines:
        return None
    return json.loads(lines[-1])["__CURSOR"]


def journal_entries(matches, after_cursor=None):
    """Return the entries that match every FIELD=value in matches, oldest first.

    Matches on the same field are alternatives, as journalctl treats them.
    """
    cmd = ["journalctl", "-q", "--no-pager", "--all", "-o", "json"]
    if after_cursor:
        # Not --after-cursor: journalctl 252 combined with matches skips the
        # first matching entry after the cursor. --cursor starts at the
        # cursor's own entry, which is dropped below.
        cmd.append(f"--cursor={after_cursor}")
    cmd += list(matches)
    out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed with status {out.returncode}: "
                             f"{out.stderr.decode(errors='replace')}")
    entries = []
    for line in out.stdout.splitlines():
        if line.strip():
            raw = json.loads(line)
            if after_cursor and raw.get("__CURSOR") == after_cursor:
                continue
            entries.append({k: _decode_value(v) for k, v in raw.items()})
    return entries


def wait_for_entries(matches, predicate, timeout, after_cursor=None):
    """Poll the journal until predicate(entries) is true or timeout seconds pass.

    Returns the last entries read; the caller asserts on them, so a timeout
    shows as a failed assertion with the entries that were there.
    """
    deadline = time.monotonic() + timeout
    while True:
        entries = journal_entries(matches, after_cursor)
        if predicate(entries) or time.monotonic() >= deadline:
            return entries
        time.sleep(0.2)


def events_of(entries, *kinds):
    return [e for e in entries if e.get("CBM365_EVENT") in kinds]


def describe(entries):
    """Format entries for an assertion message: the fields a reader needs."""
    lines = []
    for e in entries:
        fields = {k: v for k, v in sorted(e.items())
                  if k.startswith("CBM365_") or k in ("MESSAGE", "PRIORITY", "MESSAGE_ID")}
        lines.append(json.dumps(fields, ensure_ascii=False))
    return "\n".join(lines) if lines else "(no entries)"


# ---------------------------------------------------------------- mock API

def user(uid, email, name, mailbox=None, onedrive=None, modules=()):
    """Return a scenario user: each of mailbox/onedrive is True, False or None (absent)."""
    status = []
    if mailbox is not None:
        status.append({"module": MODULE_MAILBOX, "isProtected": mailbox})
    if onedrive is not None:
        status.append({"module": MODULE_ONEDRIVE, "isProtected": onedrive})
    status += [{"module": code, "isProtected": prot} for code, prot in modules]
    return {"id": uid, "email": email, "displayName": name, "moduleStatus": status}


class MockApi:
    """The mock Elements API as a child process on 127.0.0.1."""

    def __init__(self, workdir, scenario, extra_args=()):
        self.workdir = Path(workdir)
        scenario_path = self.workdir / "scenario.json"
        scenario_path.write_text(json.dumps(scenario, indent=1), encoding="utf-8")
        port_file = self.workdir / "mock.port"
        self.log_path = self.workdir / "mock.log"
        self._log = open(self.log_path, "wb")
        if not MOCK_SCRIPT.exists():
            raise unittest.SkipTest(f"mock API {MOCK_SCRIPT} not found")
        self.proc = subprocess.Popen(
            [PYTHON, str(MOCK_SCRIPT), "--scenario", str(scenario_path),
             "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
             "--quiet", *extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        port = self._wait_for_port(port_file)
        self.url = f"http://127.0.0.1:{port}"
        # The tests talk to 127.0.0.1 only: no proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _wait_for_port(self, port_file):
        deadline = time.monotonic() + MOCK_START_SEC
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mock API exited with status {self.proc.returncode}: {self.output()}")
            try:
                m = re.search(r"(\d+)\s*$", port_file.read_text(encoding="utf-8"))
            except OSError:
                m = None
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mock API wrote no port within {MOCK_START_SEC:.0f} s: {self.output()}")

    def output(self):
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def call(self, method, path, body=None):
        """Send one control request and return the decoded JSON reply (or None)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=10) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"mock control {method} {path} failed: HTTP {e.code}: {e.read()[:500]!r}") from e
        if not raw.strip():
            return None
        return json.loads(raw)

    def set_users(self, tenant, users):
        self.call("PUT", f"/_mock/tenants/{tenant['customer_id']}/{tenant['tenant_id']}/users", users)
        tenant["users"] = users

    def add_faults(self, *faults):
        self.call("POST", "/_mock/faults", list(faults))

    def clear_faults(self):
        self.call("DELETE", "/_mock/faults")

    def requests(self):
        reply = self.call("GET", "/_mock/requests")
        # Accept a bare list or an object that wraps it.
        if isinstance(reply, dict):
            reply = reply.get("requests", [])
        return reply or []

    def clear_requests(self):
        self.call("DELETE", "/_mock/requests")

    def stats(self):
        return self.call("GET", "/_mock/stats")

    def users_requests(self, tenant, page=None):
        """Return the recorded users/batch requests of a tenant (of one page)."""
        prefix = (f"/partner/external/v3/general/customers/{tenant['customer_id']}"
                  f"/tenants/{tenant['tenant_id']}/cloud-backup-m365/users/batch")
        found = []
        for r in self.requests():
            if not str(r.get("path", "")).startswith(prefix):
                continue
            if page is not None and str(query_value(r, "pageIndex")) != str(page):
                continue
            found.append(r)
        return found

    def describe_requests(self):
        """Format the recorded requests for an assertion message, one a line."""
        lines = []
        for r in self.requests():
            page = query_value(r, "pageIndex")
            lines.append(f"{time.strftime('%H:%M:%S', time.localtime(r.get('time', 0)))} {r.get('method')} "
                         f"{str(r.get('path', ''))[-60:]}{' page ' + str(page) if page else ''} "
                         f"-> {r.get('status')}{' fault ' + r['fault'] if r.get('fault') else ''}")
        return "\n".join(lines) if lines else "(none)"

    def token_requests(self):
        return [r for r in self.requests() if str(r.get("path", "")).startswith("/connect/token")]


def query_value(recorded, name):
    """Return a query parameter of a recorded request, whatever form the mock stores."""
    query = recorded.get("query")
    if isinstance(query, dict):
        value = query.get(name)
        return value[0] if isinstance(value, list) and value else value
    if isinstance(query, str):
        m = re.search(rf"(?:^|&){re.escape(name)}=([^&]*)", query)
        return m.group(1) if m else None
    m = re.search(rf"[?&]{re.escape(name)}=([^&]*)", str(recorded.get("path", "")))
    return m.group(1) if m else None


def request_body_json(recorded):
    body = recorded.get("body")
    if isinstance(body, (dict, list)):
        return body
    return json.loads(body) if body else None


# ---------------------------------------------------------------- config

def libconfig_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(*, base_url, client_id, secret_file, state_directory, targets,
                interval=10, page_size=None, timeout=10, max_parallel=None, token_url=None,
                hold_percent=None, hold_min_users=None):
    """Return a configuration file's text; targets are dicts with the file's keys.

    hold_percent and hold_min_users set poll.hold_percent and
    poll.hold_min_users; None leaves the daemon's defaults.
    """
    q = libconfig_string
    lines = ["api = {",
             f"  base_url = {q(base_url)};",
             f"  token_url = {q(token_url or base_url + '/connect/token')};",
             f"  client_id = {q(client_id)};",
             f"  client_secret_file = {q(str(secret_file))};",
             f"  timeout = {timeout};"]
    if page_size is not None:
        lines.append(f"  page_size = {page_size};")
    if max_parallel is not None:
        lines.append(f"  max_parallel = {max_parallel};")
    poll = ["poll = {", f"  interval = {interval};"]
    if hold_percent is not None:
        poll.append(f"  hold_percent = {hold_percent};")
    if hold_min_users is not None:
        poll.append(f"  hold_min_users = {hold_min_users};")
    lines += ["};", ""] + poll + ["};", "",
              f"state_directory = {q(str(state_directory))};", "", "targets = ("]
    items = []
    for t in targets:
        parts = []
        for key in ("name", "customer_id", "tenant_id"):
            if t.get(key) is not None:
                parts.append(f"{key} = {q(t[key])};")
        if t.get("interval") is not None:
            parts.append(f"interval = {t['interval']};")
        if t.get("user_emails") is not None:
            parts.append("user_emails = [ " + ", ".join(q(e) for e in t["user_emails"]) + " ];")
        items.append("  { " + " ".join(parts) + " }")
    lines.append(",\n".join(items))
    lines += [");", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- daemon

class Run:
    """One finished --once (or --check-config) run of the daemon."""

    def __init__(self, status, stdout, stderr, pid, cursor, elapsed):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.pid = pid
        self.cursor = cursor
        self.elapsed = elapsed

    def output(self):
        return self.stdout + self.stderr


def daemon_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _DAEMON_ENV_DROP}
    env.update(extra or {})
    return env


def run_daemon(args, env=None, timeout=30):
    """Run the daemon to its end and return a Run; fail the test on a timeout."""
    cursor = journal_cursor()
    started = time.monotonic()
    proc = subprocess.Popen([daemon_binary(), *args], env=daemon_env(env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"cbm365-watchd {' '.join(args)} did not exit within {timeout} s; "
                             f"output: {(out + err).decode(errors='replace')[-2000:]}")
    return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
               proc.pid, cursor, time.monotonic() - started)


class NotifySocket:
    """A datagram socket that receives sd_notify() messages, as systemd would.

    A thread drains it the whole time, as systemd does: sd_notify() blocks
    once the socket's queue (net.unix.max_dgram_qlen, often 10) is full.
    """

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode(errors="replace"))
                self._lock.notify_all()

    def wait_for(self, line, timeout):
        """Wait until a message has the line (e.g. "READY=1"); return whether it came."""
        with self._lock:
            return self._lock.wait_for(lambda: any(line in m.split("\n") for m in self.messages), timeout)

    def close(self):
        self._closed = True
        self._thread.join(timeout=2)
        self.sock.close()


# ---------------------------------------------------------------- test case

class IntegrationTestCase(unittest.TestCase):
    """A test with its own directory, client credentials and unique token."""

    maxDiff = None

    def setUp(self):
        ensure_journald()
        self.token = unique_token()
        self.dir = Path(tempfile.mkdtemp(prefix=f"cbm365-{self.token}-"))
        if os.environ.get("CBM365_KEEP_TMPDIR") != "1":
            self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir(mode=0o700)
        self.client_id = f"client-{self.token}"
        self.secret = f"secret-{uuid.uuid4().hex}"
        self.secret_file = self.dir / "client-secret"
        self.write_secret(self.secret_file, self.secret)
        self.mock = None

    @staticmethod
    def write_secret(path, secret):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")

    def tenant(self, suffix, users, field_case="camel"):
        return {"customer_id": f"cust-{self.token}-{suffix}",
                "tenant_id": f"ten-{self.token}-{suffix}",
                "field_case": field_case,
                "users": users}

    def target(self, tenant, **extra):
        """Return a config target for a tenant, named after its customer id unless extra names it."""
        t = {"name": f"{tenant['customer_id']}-name",
             "customer_id": tenant["customer_id"],
             "tenant_id": tenant["tenant_id"]}
        t.update(extra)
        return t

    def start_mock(self, tenants, faults=(), token_lifetime=3600, secret=None, mock_args=()):
        """Start the mock API with these tenants; mock_args are extra options (e.g. --delay-ms)."""
        scenario = {
            "clients": {self.client_id: {"secret": secret or self.secret, "scopes": [SCOPE]}},
            "token_lifetime": token_lifetime,
            "tenants": tenants,
            "faults": list(faults),
        }
        self.mock = MockApi(self.dir, scenario, mock_args)
        self.addCleanup(self.mock.stop)
        return self.mock

    def write_config(self, targets, name="cbm365-watchd.conf", **kwargs):
        path = self.dir / name
        kwargs.setdefault("base_url", self.mock.url if self.mock else "http://127.0.0.1:9")
        path.write_text(config_text(client_id=self.client_id, secret_file=self.secret_file,
                                    state_directory=self.state_dir, targets=targets, **kwargs),
                        encoding="utf-8")
        return path

    def run_once(self, config, env=None, timeout=30):
        return run_daemon(["-c", str(config), "--once", "--log-target=journal"], env=env, timeout=timeout)

    def snapshot_path(self, tenant, state_dir=None):
        return (state_dir or self.state_dir) / f"{tenant['customer_id']}_{tenant['tenant_id']}.snapshot"

    # Journal reads ---------------------------------------------------

    def summary_of(self, run):
        """Wait for the run's poll-summary (its last event) and return it, or None."""
        matches = [f"_PID={run.pid}", "CBM365_EVENT=poll-summary"]
        entries = wait_for_entries(matches, lambda e: len(e) > 0, JOURNAL_SETTLE_SEC, run.cursor)
        return entries[-1] if entries else None

    def run_events(self, run, target_name, expect=None):
        """Return the events of a target logged since the run began.

        Waits for the run's poll-summary first, so that every entry the run
        sent has been stored; with expect (a predicate) also waits for it.
        """
        self.summary_of(run)
        predicate = expect or (lambda e: True)
        return wait_for_entries([f"CBM365_TARGET={target_name}"], predicate, JOURNAL_SETTLE_SEC, run.cursor)

    def run_entries(self, run):
        """Return every entry the run's process sent."""
        self.summary_of(run)
        return journal_entries([f"_PID={run.pid}"], run.cursor)

    # Assertions ------------------------------------------------------

    def assertExit(self, run, status):
        if run.status == status:
            return
        self.summary_of(run)
        sent = journal_entries([f"_PID={run.pid}"], run.cursor)
        self.fail(f"exit status {run.status}, expected {status}; output:\n{run.output()[-3000:]}\n"
                  f"journal entries of the run:\n{describe(sent)[-5000:]}")

    def assertFields(self, entry, **fields):
        """Check the fields of one entry, one assertion each; values compare as strings."""
        for name, value in fields.items():
            with self.subTest(field=name):
                self.assertIn(name, entry, f"field {name} missing in {describe([entry])}")
                self.assertEqual(entry[name], str(value), f"field {name} in {describe([entry])}")

    def assertNoUserEvents(self, entries):
        found = events_of(entries, *USER_EVENTS)
        self.assertEqual(found, [], f"unexpected user events:\n{describe(found)}")

    def one_event(self, entries, kind, **match):
        """Return the single event of a kind whose fields equal match."""
        found = [e for e in events_of(entries, kind)
                 if all(e.get(k) == str(v) for k, v in match.items())]
        self.assertEqual(len(found), 1,
                         f"expected one {kind} event with {match}, found {len(found)} among:\n{describe(entries)}")
        return found[0]


def main():
    ensure_journald()
    unittest.main(verbosity=2)
