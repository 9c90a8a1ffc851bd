#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark of cbm365-watchd at scale against the mock Elements API.

Everything runs on 127.0.0.1 with throwaway state. The phases:

  loopback   N tenants of M users. A reference client (curl --parallel) fetches
             the same pages at the same parallelism. The daemon runs a baseline
             cycle, 1% of the users change, and the daemon runs a second cycle.
             The sequential Python client runs on the same data after each.
  delay      the mock sleeps --delay-ms before each page; the daemon's wall
             time against pages x delay / max_parallel, and the sequential
             client on a subset of the tenants, extrapolated by pages.
  callgrind  the daemon's second cycle over --cg-tenants tenants under
             valgrind --tool=callgrind: instructions per user, top functions.
  memory     peak RSS for one tenant of --mem-users users against a tenant of
             10 users.

Each figure is printed beside its goal with PASS or MISS, and all of them are
written to results.json in the output folder. See docs/performance.md.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MOCK_SCRIPT = ROOT / "tests" / "mock" / "elements_mock.py"
SEQUENTIAL_SCRIPT = HERE / "sequential_client.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "mock"))
import journald  # noqa: E402
import elements_mock  # noqa: E402

CLIENT_ID = "bench-client"
SCOPE = "elements.cbprotected.read.all"
UNPROTECTED_EVERY = 50
ADDED_USER_NAMESPACE = uuid.UUID("0b7d3f52-8a2e-4c59-9f61-3d2b8e5a7c10")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

GOAL_CPU_US_PER_USER = 3.0
GOAL_INSTRUCTIONS_PER_USER = 35000
GOAL_LOOPBACK_RATIO = 1.5
GOAL_DELAY_RATIO = 1.15
GOAL_SEQUENTIAL_SPEEDUP = 7.0
GOAL_PEAK_RSS_BYTES = 64 * MIB
GOAL_BYTES_PER_USER = 300

# Seconds to wait for journald to store what the daemon sent after it exited.
JOURNAL_SETTLE_SEC = 30.0
MOCK_START_SEC = 20.0
CONTROL_TIMEOUT_SEC = 600

# Environment variables that would change what the daemon under test does.
DAEMON_ENV_DROP = ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                   "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "http_proxy", "https_proxy",
                   "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy", "NO_PROXY")

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------- processes

def process_cpu_seconds(pid):
    """Return user + system CPU seconds of a running process, threads included."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5) stat are utime and stime. The split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def system_busy_seconds():
    """Return the CPU seconds all cores spent busy since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def journald_pids():
    """Return the pids of the systemd-journald processes of this mount namespace."""
    own_ns = os.readlink("/proc/self/ns/mnt")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii", errors="replace") as f:
                comm = f.read().strip()
            if comm == "systemd-journal" and os.readlink(f"/proc/{entry}/ns/mnt") == own_ns:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


class CpuWindow:
    """CPU seconds of the mock, of journald and of the whole machine over a span."""

    def __init__(self, mock_pid):
        self.mock_pid = mock_pid
        self.journald = journald_pids()

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        self.mock = end[0] - self.start[0]
        self.journald_cpu = end[1] - self.start[1]
        self.system = end[2] - self.start[2]
        return False

    def _sample(self):
        return (process_cpu_seconds(self.mock_pid),
                sum(process_cpu_seconds(p) for p in self.journald),
                system_busy_seconds())


def child_pid(pid):
    """Return the first child of process pid, or None."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def run_measured(argv, timeout, stdin_data=None, env=None, measure_rss=False):
    """Run argv to its end; return wall seconds, CPU seconds, peak RSS and output.

    CPU seconds come from wait4(), which counts the child and the children it
    reaped. Peak RSS needs a small parent: Linux keeps a process's ru_maxrss
    across exec(), so a child forked from this Python process would report
    this process's RSS as its own floor. With measure_rss, /usr/bin/time forks
    the command and reports its %M, and "pid" is the command's own pid.
    Output goes to temporary files, so a chatty child never blocks on a pipe.
    """
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, \
            tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile() as rss_file:
        if measure_rss:
            argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *argv]
        if stdin_data is not None:
            stdin.write(stdin_data)
            stdin.seek(0)
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        command_pid = None if measure_rss else proc.pid
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if command_pid is None:
                command_pid = child_pid(proc.pid)
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{argv[0]} did not finish within {timeout:.0f} s")
            time.sleep(0.005)
        wall = time.monotonic() - started
        # wait4() reaped it: tell Popen, so that it does not wait again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
        maxrss = usage.ru_maxrss * 1024
        if measure_rss:
            # The last line is %M in KiB; a line before it may note the exit status.
            lines = open(rss_file.name, encoding="ascii", errors="replace").read().split()
            maxrss = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else None
    return {"pid": command_pid, "rc": proc.returncode, "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "sys": usage.ru_stime,
            "maxrss": maxrss, "stdout": out, "stderr": err}


# ----------------------------------------------------------------- mock API

class Mock:
    """The mock Elements API as a child process on 127.0.0.1."""

    def __init__(self, workdir, name, scenario, delay_ms=0):
        workdir.mkdir(parents=True, exist_ok=True)
        scenario_path = workdir / f"{name}-scenario.json"
        scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
        port_file = workdir / f"{name}.port"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        argv = [PYTHON, str(MOCK_SCRIPT), "--scenario", str(scenario_path), "--host", "127.0.0.1",
                "--port", "0", "--port-file", str(port_file), "--quiet"]
        if delay_ms:
            argv += ["--delay-ms", str(delay_ms)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + MOCK_START_SEC
        while not port_file.exists() or not port_file.read_text(encoding="ascii").strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock API did not start: {self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text(encoding='ascii'))}"
        self.token_url = self.url + "/connect/token"

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def call(self, method, path, body=None):
        """Send one control request; return its decoded JSON reply."""
        data = body
        if body is not None and not isinstance(body, bytes):
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with OPENER.open(request, timeout=CONTROL_TIMEOUT_SEC) as reply:
            return json.load(reply)

    def stats(self):
        return self.call("GET", "/_mock/stats")

    def reset_stats(self):
        self.call("DELETE", "/_mock/stats")

    def tenants(self):
        return self.call("GET", "/_mock/tenants")

    def token(self, secret):
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                       "client_secret": secret, "scope": SCOPE}).encode()
        request = urllib.request.Request(self.token_url, data=form, method="POST", headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        with OPENER.open(request, timeout=60) as reply:
            return json.load(reply)["access_token"]

    def users_url(self, tenant, page, page_size):
        return (f"{self.url}/partner/external/v3/general/customers/{tenant['customer_id']}"
                f"/tenants/{tenant['tenant_id']}/cloud-backup-m365/users/batch"
                f"?pageIndex={page}&pageSize={page_size}")

    def warm(self, tenants, token):
        """Request page 1 of each tenant, so the mock encodes its users before a timed run."""
        for tenant in tenants:
            request = urllib.request.Request(self.users_url(tenant, 1, 1), data=b"{}", method="POST",
                                             headers={"Authorization": "Bearer " + token,
                                                      "Content-Type": "application/json"})
            with OPENER.open(request, timeout=600) as reply:
                reply.read()


class StatsWindow:
    """Mock counters over a span. The closing GET opens one connection itself."""

    def __init__(self, mock):
        self.mock = mock

    def __enter__(self):
        self.mock.reset_stats()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            stats = self.mock.stats()
            # The GET above counted its own connection.
            stats["connections"] -= 1
            self.stats = stats
        return False


def generated_scenario(secret, tenants, users, extra_tenants=()):
    return {"clients": {CLIENT_ID: {"secret": secret, "scopes": [SCOPE]}},
            "token_lifetime": 7200,
            "tenants": list(extra_tenants),
            "generate": {"customers": 1, "tenants_per_customer": tenants, "users_per_tenant": users,
                         "unprotected_every": UNPROTECTED_EVERY}}


# ------------------------------------------------------------- user churn

def change_tenant_users(tenant_index, users_per_tenant, n_changes):
    """Return the users of generated tenant (1, tenant_index) with n_changes changed users.

    Half of the changed users lose mailbox protection, a quarter are removed
    and a quarter are new users, spread over the tenant's list.
    """
    spec = {"users_per_tenant": users_per_tenant, "unprotected_every": UNPROTECTED_EVERY}
    users = [json.loads(data) for _, data in elements_mock._generated_users(1, tenant_index, spec, "camel")]
    removed = n_changes // 4
    added = n_changes // 4
    lost = n_changes - removed - added
    protected = [i for i, u in enumerate(users) if u["moduleStatus"][0]["isProtected"]]
    stride = max(1, len(protected) // max(1, lost + removed))
    picks = protected[::stride][:lost + removed]
    for i in picks[:lost]:
        users[i]["moduleStatus"][0]["isProtected"] = False
    drop = set(picks[lost:])
    users = [u for i, u in enumerate(users) if i not in drop]
    for k in range(added):
        uid = str(uuid.uuid5(ADDED_USER_NAMESPACE, f"{tenant_index}:{k}"))
        users.append({"id": uid, "email": f"new{k}@tenant1-{tenant_index}.example.com",
                      "displayName": f"New user {k}",
                      "moduleStatus": [{"module": 0, "isProtected": k % 2 == 0},
                                       {"module": 2, "isProtected": True}]})
    return users, {"lost": lost, "removed": len(picks) - lost, "added": added}


def apply_churn(mock, tenants, users_per_tenant, fraction, tenant_every):
    """Change fraction of all users, in every tenant_every-th tenant; return what changed."""
    total = {"lost": 0, "removed": 0, "added": 0, "tenants": 0}
    per_tenant = min(users_per_tenant // 2, round(users_per_tenant * fraction * tenant_every))
    if per_tenant < 1:
        return total, []
    changed = []
    for index in range(0, len(tenants), tenant_every):
        tenant = tenants[index]
        users, counts = change_tenant_users(index + 1, users_per_tenant, per_tenant)
        mock.call("PUT", f"/_mock/tenants/{tenant['customer_id']}/{tenant['tenant_id']}/users",
                  json.dumps(users).encode())
        for key, value in counts.items():
            total[key] += value
        total["tenants"] += 1
        changed.append(tenant)
    return total, changed


# ------------------------------------------------------------------ daemon

def libconfig_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path, mock, secret_file, state_dir, tenants, name_prefix, page_size, max_parallel):
    q = libconfig_string
    lines = ["api = {",
             f"  base_url = {q(mock.url)};",
             f"  token_url = {q(mock.token_url)};",
             f"  client_id = {q(CLIENT_ID)};",
             f"  client_secret_file = {q(str(secret_file))};",
             f"  page_size = {page_size};",
             "  timeout = 600;",
             f"  max_parallel = {max_parallel};",
             "};",
             "poll = { interval = 900; };",
             f"state_directory = {q(str(state_dir))};",
             "targets = ("]
    for i, tenant in enumerate(tenants):
        comma = "," if i + 1 < len(tenants) else ""
        lines.append(f"  {{ name = {q(f'{name_prefix}-{i + 1}')}; customer_id = {q(tenant['customer_id'])};"
                     f" tenant_id = {q(tenant['tenant_id'])}; }}{comma}")
    lines.append(");")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


def unit_environment():
    """Return the Environment= settings of the systemd unit, so that the daemon
    runs here as the service runs it (GLIBC_TUNABLES, for one)."""
    env = {}
    for line in (ROOT / "units" / "cbm365-watchd.service").read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            for item in shlex.split(line[len("Environment="):]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def daemon_env():
    env = {k: v for k, v in os.environ.items() if k not in DAEMON_ENV_DROP}
    env.update(unit_environment())
    return env


def journal_cursor():
    out = subprocess.run(["journalctl", "-q", "--no-pager", "-n", "1", "-o", "json"],
                         capture_output=True, timeout=60, check=False)
    lines = out.stdout.splitlines()
    return json.loads(lines[-1])["__CURSOR"] if lines else None


def journal_since(cursor):
    """Return the journal entries after cursor, reduced to the fields counted here."""
    cmd = ["journalctl", "-q", "--no-pager", "--all", "-o", "json",
           "--output-fields=CBM365_TARGET,CBM365_EVENT,CBM365_CHANGES,_PID,SYSLOG_IDENTIFIER,MESSAGE"]
    if cursor:
        cmd.append(f"--cursor={cursor}")
    out = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    entries = []
    for line in out.stdout.splitlines():
        entry = json.loads(line)
        if cursor and entry.get("__CURSOR") == cursor:
            continue
        entries.append(entry)
    return entries


def count_journal_events(cursor, prefix, pid, settle_sec=JOURNAL_SETTLE_SEC):
    """Count the daemon's entries, waiting until its poll-summary has been stored."""
    deadline = time.monotonic() + settle_sec
    while True:
        entries = journal_since(cursor)
        own = [e for e in entries if str(e.get("_PID")) == str(pid)]
        done = any(e.get("CBM365_EVENT") == "poll-summary" for e in own)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    events = [e for e in entries if str(e.get("CBM365_TARGET", "")).startswith(prefix + "-")]
    summary = next((e for e in own if e.get("CBM365_EVENT") == "poll-summary"), {})
    suppressed = [e.get("MESSAGE") for e in entries
                  if e.get("SYSLOG_IDENTIFIER") == "systemd-journald" and "uppressed" in str(e.get("MESSAGE"))]
    kinds = {}
    for e in events:
        kinds[e.get("CBM365_EVENT")] = kinds.get(e.get("CBM365_EVENT"), 0) + 1
    return {"events": len(events), "entries": len(own), "kinds": kinds,
            "changes": summary.get("CBM365_CHANGES"), "summary_seen": bool(summary),
            "suppressed": suppressed}


def count_console_events(stderr, prefix):
    lines = stderr.decode("utf-8", "replace").splitlines()
    events = [line for line in lines if f"CBM365_TARGET={prefix}-" in line]
    summary = next((line for line in lines if "CBM365_EVENT=poll-summary" in line), "")
    m = re.search(r"CBM365_CHANGES=(\d+)", summary)
    kinds = {}
    for line in events:
        match = re.search(r"CBM365_EVENT=(\S+)", line)
        kind = match.group(1) if match else None
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"events": len(events), "entries": len(lines), "kinds": kinds,
            "changes": m.group(1) if m else None, "summary_seen": bool(summary), "suppressed": []}


def run_daemon(args, config, prefix, mock, timeout, wrapper=()):
    """Run one --once cycle; return its measurements, mock counters and events."""
    cursor = journal_cursor() if args.log_target == "journal" else None
    journald_before = journald_pids()
    argv = [*wrapper, args.daemon, "-c", str(config), "--once", f"--log-target={args.log_target}"]
    with StatsWindow(mock) as stats, CpuWindow(mock.pid) as cpu:
        result = run_measured(argv, timeout, env=daemon_env(), measure_rss=True)
    if result["rc"] != 0:
        raise RuntimeError(f"daemon exited with status {result['rc']}: "
                           f"{result['stderr'].decode(errors='replace')[-3000:]}")
    console = count_console_events(result["stderr"], prefix)
    if args.log_target == "journal":
        # Other test suites on the machine may stop and restart journald; the
        # daemon then writes the entries it could not send to standard error.
        restarted = journald_pids() != journald_before
        events = count_journal_events(cursor, prefix, result["pid"],
                                      settle_sec=5 if restarted else JOURNAL_SETTLE_SEC)
        events["journald_restarted"] = restarted
        events["console_fallback"] = console["events"]
        events["events"] += console["events"]
        for kind, n in console["kinds"].items():
            events["kinds"][kind] = events["kinds"].get(kind, 0) + n
        if not events["summary_seen"] and console["summary_seen"]:
            events["changes"], events["summary_seen"] = console["changes"], True
    else:
        events = console
    result.update(stats=stats.stats, mock_cpu=cpu.mock, journald_cpu=cpu.journald_cpu,
                  system_cpu=cpu.system, events=events)
    del result["stdout"], result["stderr"]
    return result


# -------------------------------------------------------- reference clients

def run_reference(mock, token, tenants, pages_per_tenant, page_size, parallel, timeout):
    """Fetch every page with curl --parallel; return its timing and mock counters."""
    lines = ['header = "Authorization: Bearer ' + token + '"',
             'header = "Content-Type: application/json"',
             'data = "{}"',
             'write-out = "%{http_code}\\n"',
             "silent"]
    for tenant in tenants:
        for page in range(1, pages_per_tenant + 1):
            lines.append(f'url = "{mock.users_url(tenant, page, page_size)}"')
            lines.append('output = "/dev/null"')
    # The configuration, with the token, goes to standard input from an
    # unlinked temporary file, so the token is in no argv and no named file.
    argv = ["curl", "--parallel", "--parallel-max", str(parallel), "-K", "-"]
    with StatsWindow(mock) as stats, CpuWindow(mock.pid) as cpu:
        result = run_measured(argv, timeout, stdin_data=("\n".join(lines) + "\n").encode())
    codes = result["stdout"].decode().split()
    ok = sum(1 for c in codes if c == "200")
    if result["rc"] != 0 or ok != len(tenants) * pages_per_tenant:
        raise RuntimeError(f"curl fetched {ok} of {len(tenants) * pages_per_tenant} pages, "
                           f"status {result['rc']}: {result['stderr'].decode(errors='replace')[-2000:]}")
    result.update(stats=stats.stats, mock_cpu=cpu.mock, system_cpu=cpu.system, pages=ok)
    del result["stdout"], result["stderr"]
    return result


def run_sequential(mock, secret_file, targets_file, state_file, page_size, timeout, max_tenants=0):
    argv = [PYTHON, str(SEQUENTIAL_SCRIPT), "--token-url", mock.token_url, "--base-url", mock.url,
            "--client-id", CLIENT_ID, "--secret-file", str(secret_file), "--targets", str(targets_file),
            "--state", str(state_file), "--page-size", str(page_size)]
    if max_tenants:
        argv += ["--max-tenants", str(max_tenants)]
    with StatsWindow(mock) as stats, CpuWindow(mock.pid) as cpu:
        result = run_measured(argv, timeout)
    if result["rc"] != 0:
        raise RuntimeError(f"sequential client failed: {result['stderr'].decode(errors='replace')[-2000:]}")
    result.update(stats=stats.stats, mock_cpu=cpu.mock, system_cpu=cpu.system,
                  counts=json.loads(result["stdout"]))
    del result["stdout"], result["stderr"]
    return result


# ------------------------------------------------------------------ phases

class Bench:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="work-", dir=self.out))
        self.run_id = "bench" + uuid.uuid4().hex[:10]
        self.secret = uuid.uuid4().hex
        self.secret_file = self.work / "client-secret"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret + "\n")
        self.results = {"run_id": self.run_id, "args": {k: v for k, v in vars(args).items()}}
        self.mocks = []

    def start_mock(self, name, tenants, users, delay_ms=0, extra_tenants=()):
        log(f"starting mock '{name}': {tenants} tenants x {users} users, delay {delay_ms} ms")
        mock = Mock(self.work, name, generated_scenario(self.secret, tenants, users, extra_tenants), delay_ms)
        self.mocks.append(mock)
        return mock

    def stop_mock(self, mock):
        mock.stop()
        self.mocks.remove(mock)

    def close(self):
        for mock in list(self.mocks):
            self.stop_mock(mock)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def daemon_setup(self, name, mock, tenants):
        state = self.work / f"state-{name}"
        state.mkdir()
        config = self.work / f"{name}.conf"
        prefix = f"{self.run_id}-{name}"
        write_config(config, mock, self.secret_file, state, tenants, prefix,
                     self.args.page_size, self.args.max_parallel)
        return config, prefix

    def loopback(self):
        a = self.args
        n, m = a.tenants, a.users
        pages_per_tenant = max(1, math.ceil(m / a.page_size))
        mock = self.start_mock("loopback", n, m)
        tenants = mock.tenants()
        token = mock.token(self.secret)
        targets_file = self.work / "targets.json"
        targets_file.write_text(json.dumps(tenants), encoding="utf-8")
        config, prefix = self.daemon_setup("loopback", mock, tenants)
        timeout = a.phase_timeout
        r = self.results["loopback"] = {"tenants": n, "users_per_tenant": m, "users": n * m,
                                        "pages": n * pages_per_tenant}

        log("reference client, first pass (the mock encodes every tenant's users)")
        r["reference_cold"] = run_reference(mock, token, tenants, pages_per_tenant, a.page_size,
                                            a.max_parallel, timeout)
        log("reference client, timed pass")
        r["reference"] = run_reference(mock, token, tenants, pages_per_tenant, a.page_size,
                                       a.max_parallel, timeout)
        log("daemon, cycle 1 (baseline)")
        r["cycle1"] = run_daemon(a, config, prefix, mock, timeout)
        log("sequential client, run 1 (baseline)")
        seq_state = self.work / "sequential-state.json"
        r["sequential1"] = run_sequential(mock, self.secret_file, targets_file, seq_state, a.page_size, timeout)

        log(f"changing {a.churn * 100:g}% of the users in every {a.churn_tenant_every}th tenant")
        r["churn"], changed = apply_churn(mock, tenants, m, a.churn, a.churn_tenant_every)
        mock.warm(changed, token)
        log("reference client, timed pass on the changed data")
        r["reference2"] = run_reference(mock, token, tenants, pages_per_tenant, a.page_size,
                                        a.max_parallel, timeout)
        log("daemon, cycle 2")
        r["cycle2"] = run_daemon(a, config, prefix, mock, timeout)
        log("sequential client, run 2 (diff)")
        r["sequential2"] = run_sequential(mock, self.secret_file, targets_file, seq_state, a.page_size, timeout)
        self.stop_mock(mock)

    def delay(self):
        a = self.args
        n = a.delay_tenants or a.tenants
        m = a.users
        pages_per_tenant = max(1, math.ceil(m / a.page_size))
        mock = self.start_mock("delay", n, m, delay_ms=a.delay_ms)
        tenants = mock.tenants()
        config, prefix = self.daemon_setup("delay", mock, tenants)
        pages = n * pages_per_tenant
        ideal = pages * a.delay_ms / 1000 / a.max_parallel
        r = self.results["delay"] = {"tenants": n, "users": n * m, "pages": pages,
                                     "delay_ms": a.delay_ms, "ideal": ideal}
        log(f"daemon under {a.delay_ms} ms delay: {pages} pages, ideal {ideal:.1f} s")
        r["daemon"] = run_daemon(a, config, prefix, mock, max(a.phase_timeout, ideal * 4))
        subset = min(n, a.seq_delay_tenants)
        targets_file = self.work / "delay-targets.json"
        targets_file.write_text(json.dumps(tenants), encoding="utf-8")
        log(f"sequential client under {a.delay_ms} ms delay on {subset} of {n} tenants")
        seq = run_sequential(mock, self.secret_file, targets_file, self.work / "delay-seq.json",
                             a.page_size, a.phase_timeout, max_tenants=subset)
        seq["subset_tenants"] = subset
        seq["extrapolated_wall"] = seq["wall"] * n / subset
        r["sequential"] = seq
        self.stop_mock(mock)

    def callgrind(self):
        a = self.args
        n, m = a.cg_tenants, a.cg_users
        mock = self.start_mock("callgrind", n, m)
        tenants = mock.tenants()
        token = mock.token(self.secret)
        config, prefix = self.daemon_setup("callgrind", mock, tenants)

        log("daemon, cycle 1 for callgrind (not measured)")
        run_daemon(a, config, prefix, mock, a.phase_timeout)
        churn, changed = apply_churn(mock, tenants, m, a.churn, a.churn_tenant_every)
        mock.warm(changed, token)

        out_file = self.out / "callgrind.out"
        log("daemon, cycle 2 under valgrind --tool=callgrind")
        result = run_daemon(a, config, prefix, mock, a.phase_timeout * 4,
                            wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"))

        total = callgrind_total(out_file)
        annotate = subprocess.run(["callgrind_annotate", str(out_file)], capture_output=True,
                                  timeout=300, check=False).stdout.decode(errors="replace")
        top = top_functions(annotate, 10)
        inclusive = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out_file)],
                                   capture_output=True, timeout=300, check=False).stdout.decode(errors="replace")
        top_inclusive = top_functions(inclusive, 25)
        top_file = self.out / "callgrind-top.txt"
        top_file.write_text(f"Total instructions (Ir): {total:,}\n\nTop 10 functions, self cost:\n"
                            + "\n".join(top) + "\n\nTop 25 functions, inclusive cost:\n"
                            + "\n".join(top_inclusive) + "\n", encoding="utf-8")
        self.results["callgrind"] = {"tenants": n, "users": n * m, "churn": churn, "ir": total,
                                     "ir_per_user": total / (n * m), "top": top,
                                     "top_inclusive": top_inclusive, "top_file": str(top_file),
                                     "out_file": str(out_file), "events": result["events"]}
        self.stop_mock(mock)

    def memory(self):
        a = self.args
        tiny_users = [{"id": f"00000000-0000-4000-8000-{i:012x}", "email": f"user{i}@tiny.example.com",
                       "displayName": f"Tiny {i}", "moduleStatus": [{"module": 0, "isProtected": True},
                                                                    {"module": 2, "isProtected": True}]}
                      for i in range(1, 11)]
        tiny = {"customer_id": "tiny-customer", "tenant_id": "tiny-tenant", "users": tiny_users}
        mock = self.start_mock("memory", 1, a.mem_users, extra_tenants=[tiny])
        tenants = mock.tenants()
        big = [t for t in tenants if t["tenant_id"] != "tiny-tenant"]
        token = mock.token(self.secret)
        r = self.results["memory"] = {"users": a.mem_users}

        log("daemon on a tenant of 10 users, two cycles")
        config, prefix = self.daemon_setup("tiny", mock, [tiny])
        r["tiny"] = [run_daemon(a, config, prefix, mock, a.phase_timeout) for _ in range(2)]
        log(f"daemon on one tenant of {a.mem_users} users, cycle 1")
        config, prefix = self.daemon_setup("big", mock, big)
        first = run_daemon(a, config, prefix, mock, a.phase_timeout)
        r["churn"], changed = apply_churn(mock, big, a.mem_users, a.churn, 1)
        mock.warm(changed, token)
        log(f"daemon on one tenant of {a.mem_users} users, cycle 2")
        r["big"] = [first, run_daemon(a, config, prefix, mock, a.phase_timeout)]
        self.stop_mock(mock)


def callgrind_total(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals line in {path}")


def top_functions(annotate_output, count):
    """Return the first count function lines of callgrind_annotate's table."""
    lines = annotate_output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "file:function" in line) + 2
    except StopIteration:
        return []
    top = []
    for line in lines[start:]:
        if not line.strip():
            break
        top.append(line.rstrip())
        if len(top) == count:
            break
    return top


# ------------------------------------------------------------------ report

def verdict(ok):
    return "PASS" if ok else "MISS"


def fmt_mb(n):
    return f"{n / MIB:.1f} MiB"


class Report:
    def __init__(self):
        self.rows = []

    def figure(self, name, value, goal="", ok=None):
        self.rows.append((name, value, goal, "" if ok is None else verdict(ok)))

    def text(self):
        width = max(len(r[0]) for r in self.rows)
        vwidth = max(len(r[1]) for r in self.rows)
        gwidth = max(len(r[2]) for r in self.rows)
        return "\n".join(f"{n:<{width}}  {v:>{vwidth}}  {g:<{gwidth}}  {s}".rstrip() for n, v, g, s in self.rows)


def cycle_rows(rep, label, cycle, users, max_parallel):
    cpu = cycle["cpu"]
    us_per_user = cpu / users * 1e6
    cycle["cpu_us_per_user"] = us_per_user
    stats = cycle["stats"]
    ev = cycle["events"]
    rep.figure(f"{label}: wall time", f"{cycle['wall']:.2f} s")
    rep.figure(f"{label}: daemon CPU user+sys", f"{cpu:.2f} s ({cycle['user']:.2f}+{cycle['sys']:.2f})")
    rep.figure(f"{label}: CPU per user", f"{us_per_user:.2f} us", f"<= {GOAL_CPU_US_PER_USER:g} us",
               us_per_user <= GOAL_CPU_US_PER_USER)
    rep.figure(f"{label}: peak RSS", fmt_mb(cycle["maxrss"]), f"< {GOAL_PEAK_RSS_BYTES // MIB} MiB",
               cycle["maxrss"] < GOAL_PEAK_RSS_BYTES)
    rep.figure(f"{label}: requests (token)", f"{stats['requests']} ({stats['token_requests']})")
    rep.figure(f"{label}: connections", f"{stats['connections']}", f"<= {max_parallel + 1}",
               stats["connections"] <= max_parallel + 1)
    rep.figure(f"{label}: max concurrent requests", f"{stats['max_concurrent']}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(ev["kinds"].items(), key=lambda kv: str(kv[0])))
    if ev.get("journald_restarted") or not ev["summary_seen"]:
        kinds += "; INCOMPLETE: journald was restarted during the run or the poll-summary entry is missing"
    elif ev.get("console_fallback"):
        kinds += f"; {ev['console_fallback']} of them on standard error (journal unreachable)"
    rep.figure(f"{label}: events logged", f"{ev['events']}", kinds)
    rep.figure(f"{label}: poll-summary changes", f"{ev['changes']}")
    other = cycle["system_cpu"] - cpu - cycle["mock_cpu"] - cycle["journald_cpu"]
    rep.figure(f"{label}: CPU of mock / journald / other processes",
               f"{cycle['mock_cpu']:.2f} / {cycle['journald_cpu']:.2f} / {max(0.0, other):.2f} s",
               f"machine busy {cycle['system_cpu']:.2f} of {os.cpu_count() * cycle['wall']:.2f} CPU-seconds")
    if ev["suppressed"]:
        rep.figure(f"{label}: journald suppressed messages", "; ".join(ev["suppressed"])[:200])


def build_report(results, args):
    rep = Report()
    mp = args.max_parallel
    lb = results.get("loopback")
    if lb:
        rep.figure("loopback: tenants x users", f"{lb['tenants']} x {lb['users_per_tenant']}",
                   f"{lb['pages']} pages")
        for i, (cycle, ref, seq) in enumerate((("cycle1", "reference", "sequential1"),
                                               ("cycle2", "reference2", "sequential2")), start=1):
            label = f"cycle {i}"
            c, rf, sq = lb[cycle], lb[ref], lb[seq]
            cycle_rows(rep, label, c, lb["users"], mp)
            ratio = c["wall"] / rf["wall"]
            rep.figure(f"{label}: curl --parallel-max {mp} wall", f"{rf['wall']:.2f} s",
                       f"mock CPU {rf['mock_cpu']:.2f} s, curl CPU {rf['cpu']:.2f} s, "
                       f"{rf['stats']['connections']} connections")
            rep.figure(f"{label}: daemon / curl wall", f"{ratio:.2f}x", f"<= {GOAL_LOOPBACK_RATIO:g}x",
                       ratio <= GOAL_LOOPBACK_RATIO)
            rep.figure(f"{label}: sequential Python wall", f"{sq['wall']:.2f} s",
                       f"CPU {sq['cpu']:.2f} s, mock CPU {sq['mock_cpu']:.2f} s")
            rep.figure(f"{label}: speed-up over sequential", f"{sq['wall'] / c['wall']:.1f}x")
        rep.figure("reference cold pass (mock encodes users)", f"{lb['reference_cold']['wall']:.2f} s",
                   f"mock CPU {lb['reference_cold']['mock_cpu']:.2f} s")
        ch = lb["churn"]
        rep.figure("churn applied", f"{ch['lost'] + ch['removed'] + ch['added']} users",
                   f"{ch['tenants']} tenants: {ch['lost']} lost mailbox, {ch['removed']} removed, "
                   f"{ch['added']} added")
    dl = results.get("delay")
    if dl:
        d = dl["daemon"]
        ratio = d["wall"] / dl["ideal"]
        seq = dl["sequential"]
        speedup = seq["extrapolated_wall"] / d["wall"]
        rep.figure(f"delay {dl['delay_ms']} ms: tenants x users", f"{dl['tenants']} x {args.users}",
                   f"{dl['pages']} pages")
        rep.figure("delay: ideal wall (pages x delay / max_parallel)", f"{dl['ideal']:.2f} s")
        rep.figure("delay: daemon wall", f"{d['wall']:.2f} s",
                   f"CPU {d['cpu']:.2f} s, {d['stats']['connections']} connections, "
                   f"max concurrent {d['stats']['max_concurrent']}")
        rep.figure("delay: daemon / ideal", f"{ratio:.3f}x", f"<= {GOAL_DELAY_RATIO:g}x",
                   ratio <= GOAL_DELAY_RATIO)
        extrapolated = seq["subset_tenants"] < dl["tenants"]
        rep.figure("delay: sequential Python wall", f"{seq['extrapolated_wall']:.1f} s",
                   (f"extrapolated from {seq['subset_tenants']} tenants in {seq['wall']:.1f} s"
                    if extrapolated else "measured on all tenants"))
        rep.figure("delay: speed-up over sequential", f"{speedup:.2f}x", f">= {GOAL_SEQUENTIAL_SPEEDUP:g}x",
                   speedup >= GOAL_SEQUENTIAL_SPEEDUP)
    cg = results.get("callgrind")
    if cg:
        rep.figure(f"callgrind: cycle 2, {cg['tenants']} tenants", f"{cg['ir']:,} Ir")
        rep.figure("callgrind: instructions per user", f"{cg['ir_per_user']:,.0f}",
                   f"<= {GOAL_INSTRUCTIONS_PER_USER:,}", cg["ir_per_user"] <= GOAL_INSTRUCTIONS_PER_USER)
    mem = results.get("memory")
    if mem:
        tiny = max(c["maxrss"] for c in mem["tiny"])
        big = max(c["maxrss"] for c in mem["big"])
        per_user = (big - tiny) / mem["users"]
        limit = GOAL_PEAK_RSS_BYTES + GOAL_BYTES_PER_USER * mem["users"]
        mem["bytes_per_user"] = per_user
        rep.figure("memory: tiny run peak RSS (10 users)", fmt_mb(tiny))
        rep.figure(f"memory: one tenant of {mem['users']} users, peak RSS", fmt_mb(big),
                   f"< {fmt_mb(limit)} (64 MiB + {GOAL_BYTES_PER_USER} B/user)", big < limit)
        rep.figure("memory: peak RSS by cycle", " / ".join(fmt_mb(c["maxrss"]) for c in mem["big"]))
        rep.figure("memory: (RSS - tiny RSS) / users", f"{per_user:.0f} B",
                   f"<= {GOAL_BYTES_PER_USER} B", per_user <= GOAL_BYTES_PER_USER)
        rep.figure("memory: CPU per user by cycle",
                   " / ".join(f"{c['cpu'] / mem['users'] * 1e6:.2f} us" for c in mem["big"]))
    return rep


def machine_summary():
    model = "unknown"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kb = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "ram_mib": mem_kb // 1024,
            "loadavg": open("/proc/loadavg", encoding="ascii").read().split()[:3]}


# -------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark cbm365-watchd against the mock Elements API on 127.0.0.1.")
    p.add_argument("--daemon", default=os.environ.get("CBM365_WATCHD") or str(ROOT / "build-bench" / "cbm365-watchd"),
                   help="daemon binary (default: $CBM365_WATCHD or build-bench/cbm365-watchd)")
    p.add_argument("--quick", action="store_true",
                   help="100 tenants, 20 of them for the delay phase, 20 for callgrind, 20,000 users for memory")
    p.add_argument("--tenants", type=int, default=1000, help="tenants in the loopback phase (default 1000)")
    p.add_argument("--users", type=int, default=1000, help="users per tenant (default 1000)")
    p.add_argument("--max-parallel", type=int, default=8, help="max_parallel and curl --parallel-max (default 8)")
    p.add_argument("--page-size", type=int, default=100, help="users per page (default 100)")
    p.add_argument("--delay-ms", type=int, default=100, help="mock delay per page in the delay phase (default 100)")
    p.add_argument("--delay-tenants", type=int, default=0, help="tenants in the delay phase (default: --tenants)")
    p.add_argument("--seq-delay-tenants", type=int, default=20,
                   help="tenants the sequential client polls in the delay phase, extrapolated (default 20)")
    p.add_argument("--cg-tenants", type=int, default=50, help="tenants in the callgrind phase (default 50)")
    p.add_argument("--cg-users", type=int, default=1000, help="users per tenant under callgrind (default 1000)")
    p.add_argument("--mem-users", type=int, default=100000, help="users of the memory phase's tenant (default 100000)")
    p.add_argument("--churn", type=float, default=0.01, help="fraction of all users changed before cycle 2 (default 0.01)")
    p.add_argument("--churn-tenant-every", type=int, default=10,
                   help="change users in every Nth tenant only (default 10)")
    p.add_argument("--phases", default="loopback,delay,callgrind,memory",
                   help="comma-separated phases to run (default all)")
    p.add_argument("--log-target", choices=("journal", "console"), default=None,
                   help="daemon's --log-target (default journal when one listens or can be started)")
    p.add_argument("--phase-timeout", type=float, default=1800, help="seconds one run may take (default 1800)")
    p.add_argument("--out-dir", default=None, help="folder for results.json and callgrind files "
                   "(default /tmp/cbm365-bench-TIME)")
    p.add_argument("--keep", action="store_true", help="keep the configurations, snapshots and mock logs")
    args = p.parse_args(argv)

    if args.quick:
        args.tenants = 100 if args.tenants == 1000 else args.tenants
        args.delay_tenants = args.delay_tenants or 20
        args.seq_delay_tenants = min(args.seq_delay_tenants, 5)
        args.cg_tenants = 20 if args.cg_tenants == 50 else args.cg_tenants
        args.mem_users = 20000 if args.mem_users == 100000 else args.mem_users
    if not 1 <= args.page_size <= 100:
        p.error("--page-size must be 1..100")
    if args.tenants < 1 or args.users < 1 or args.max_parallel < 1 or args.churn_tenant_every < 1:
        p.error("--tenants, --users, --max-parallel and --churn-tenant-every must be 1 or more")
    if args.tenants > 10000:
        p.error("--tenants must be at most 10000 (the mock's generator limit)")
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - {"loopback", "delay", "callgrind", "memory"}
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not os.access(args.daemon, os.X_OK):
        p.error(f"daemon binary {args.daemon} not found: build it or pass --daemon")
    if args.out_dir is None:
        args.out_dir = f"/tmp/cbm365-bench-{time.strftime('%Y%m%d-%H%M%S')}"
    return args


def main(argv):
    args = parse_args(argv)
    for tool in ("curl", "valgrind", "callgrind_annotate", "journalctl"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found; install it (apt-get install curl valgrind systemd)", file=sys.stderr)
            return 1
    own_journald = None
    if args.log_target is None:
        args.log_target = "journal"
    if args.log_target == "journal" and not journald.is_listening():
        own_journald = journald.start()
        log(f"started systemd-journald, pid {own_journald}")

    bench = Bench(args)
    bench.results["machine"] = machine_summary()
    started = time.monotonic()
    try:
        for phase in args.phases:
            phase_started = time.monotonic()
            getattr(bench, phase)()
            bench.results.setdefault("phase_seconds", {})[phase] = time.monotonic() - phase_started
    finally:
        bench.close()
        if own_journald is not None:
            journald.stop(own_journald)
    bench.results["machine"]["loadavg_end"] = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    bench.results["total_seconds"] = time.monotonic() - started

    report = build_report(bench.results, args)
    machine = bench.results["machine"]
    header = (f"cbm365-watchd benchmark {bench.run_id}: {machine['nproc']} CPUs ({machine['cpu']}), "
              f"{machine['ram_mib']} MiB RAM, max_parallel {args.max_parallel}, page_size {args.page_size}, "
              f"log target {args.log_target}")
    text = header + "\n" + report.text() + "\n"
    cg = bench.results.get("callgrind")
    if cg:
        text += "\ncallgrind top 10 functions (self cost):\n" + "\n".join(cg["top"]) + "\n"
    text += f"\nresults: {Path(args.out_dir) / 'results.json'}  total {bench.results['total_seconds']:.0f} s\n"
    print(text)
    (Path(args.out_dir) / "report.txt").write_text(text, encoding="utf-8")
    (Path(args.out_dir) / "results.json").write_text(json.dumps(bench.results, indent=1, default=str),
                                                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
