#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cbm365-watchd as a service: readiness, periodic polls, SIGHUP reload, outages and SIGTERM."""

import os
import re
import signal
import subprocess
import time

import harness
from harness import user

INTERVAL_SEC = 10               # the smallest poll.interval the configuration accepts
FIRST_POLL_SEC = 15             # a target without a snapshot is polled about 10 s after start
NEXT_POLL_SEC = INTERVAL_SEC + 10
STOP_SEC = 5                    # SIGTERM must end the daemon within this time
PRIORITY_ERR = 3
PRIORITY_WARNING = 4

# A snapshot file is "cbm365-watchd-snapshot 1", "users N", N user lines and
# the trailer "end N CHECKSUM" (the format daemon/snapshot.c writes).
SNAPSHOT_MAGIC_LINE = b"cbm365-watchd-snapshot 1"
SNAPSHOT_TRAILER = re.compile(rb"^end (\d+) [0-9a-f]{16}$")


class DaemonTestCase(harness.IntegrationTestCase):

    def start_daemon(self, config):
        """Start the daemon in the foreground as systemd would, with a notify socket."""
        self.notify = harness.NotifySocket(self.dir / "notify.sock")
        self.addCleanup(self.notify.close)
        self.cursor = harness.journal_cursor()
        self.daemon_log = open(self.dir / "daemon.out", "wb")
        self.addCleanup(self.daemon_log.close)
        self.daemon = subprocess.Popen(
            [harness.daemon_binary(), "-c", str(config), "--log-target=journal"],
            env=harness.daemon_env({"NOTIFY_SOCKET": self.notify.path}),
            stdin=subprocess.DEVNULL, stdout=self.daemon_log, stderr=subprocess.STDOUT)
        self.addCleanup(self.kill_daemon)
        self.assertTrue(self.notify.wait_for("READY=1", 10),
                        f"no READY=1 within 10 s; notify messages: {self.notify.messages}; output: {self.output()}")

    def kill_daemon(self):
        if self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(timeout=5)

    def output(self):
        return (self.dir / "daemon.out").read_text(errors="replace")[-3000:]

    def entries(self, target):
        return harness.journal_entries([f"CBM365_TARGET={target['name']}"], self.cursor)

    def wait_event(self, target, kind, count=1, timeout=NEXT_POLL_SEC, **match):
        """Wait until the target has count events of kind (matching fields); return them."""
        def matching(entries):
            return [e for e in harness.events_of(entries, kind)
                    if all(e.get(k) == str(v) for k, v in match.items())]

        entries = harness.wait_for_entries([f"CBM365_TARGET={target['name']}"],
                                           lambda e: len(matching(e)) >= count, timeout, self.cursor)
        found = matching(entries)
        if len(found) < count:
            sent = harness.journal_entries([f"_PID={self.daemon.pid}"], self.cursor)
            self.fail(f"waited {timeout} s for {count} {kind} {match or ''} of {target['name']}; "
                      f"the daemon's entries:\n{harness.describe(sent)}\ndaemon output: {self.output()}\n"
                      f"requests the mock answered:\n{self.mock.describe_requests()}")
        return found

    def summaries(self):
        return harness.journal_entries([f"_PID={self.daemon.pid}", "CBM365_EVENT=poll-summary"], self.cursor)

    def assertAlive(self):
        self.assertIsNone(self.daemon.poll(), f"the daemon exited with {self.daemon.returncode}: {self.output()}")

    def stop_daemon(self):
        """Send SIGTERM; the daemon must exit 0 within STOP_SEC seconds."""
        started = time.monotonic()
        self.daemon.send_signal(signal.SIGTERM)
        try:
            status = self.daemon.wait(timeout=STOP_SEC)
        except subprocess.TimeoutExpired:
            self.fail(f"the daemon did not exit within {STOP_SEC} s of SIGTERM")
        self.assertEqual(status, 0, f"exit status after SIGTERM; output: {self.output()}")
        return time.monotonic() - started

    def assertSnapshotsComplete(self):
        """Each file in the state directory is a whole snapshot; no temporary file is left."""
        names = sorted(p.name for p in self.state_dir.iterdir())
        for path in self.state_dir.iterdir():
            with self.subTest(file=path.name):
                self.assertTrue(path.name.endswith(".snapshot"), f"unexpected file left: {names}")
                data = path.read_bytes()
                self.assertTrue(data.endswith(b"\n"), f"{path.name} does not end with a newline")
                lines = data[:-1].split(b"\n")
                self.assertEqual(lines[0], SNAPSHOT_MAGIC_LINE)
                self.assertRegex(lines[1], rb"^users \d+$")
                count = int(lines[1].split()[1])
                trailer = SNAPSHOT_TRAILER.match(lines[-1])
                self.assertIsNotNone(trailer, f"{path.name} last line {lines[-1][:80]!r}")
                self.assertEqual(int(trailer.group(1)), count)
                self.assertEqual(len(lines), count + 3, f"{path.name} has {len(lines) - 3} user lines")


class ReloadTest(DaemonTestCase):

    def test_polls_and_reloads(self):
        a_users = [user("a1", "ann@d.example", "Ann", mailbox=True, onedrive=True),
                   user("a2", "ben@d.example", "Ben", mailbox=True, onedrive=True)]
        a = self.tenant("a", a_users)
        b = self.tenant("b", [user("b1", "cy@d.example", "Cy", mailbox=True, onedrive=False)])
        self.start_mock([a, b])
        ta, tb = self.target(a), self.target(b)
        config = self.write_config([ta], interval=INTERVAL_SEC)

        self.start_daemon(config)

        self.wait_event(ta, "baseline-recorded", timeout=FIRST_POLL_SEC, CBM365_USERS=2)

        # A user loses mailbox protection: the next poll reports it.
        self.mock.set_users(a, [user("a1", "ann@d.example", "Ann", mailbox=False, onedrive=True), a_users[1]])
        lost = self.wait_event(ta, "protection-lost")[0]
        self.assertFields(lost, CBM365_USER_ID="a1", CBM365_MODULE="mailbox", CBM365_CURRENT="unprotected")

        # SIGHUP with a second target: it gets its baseline, the first one does not again.
        self.write_config([ta, tb], interval=INTERVAL_SEC)
        self.daemon.send_signal(signal.SIGHUP)
        self.wait_event(tb, "baseline-recorded", timeout=FIRST_POLL_SEC, CBM365_USERS=1, CBM365_UNPROTECTED=1)
        self.assertEqual(len(harness.events_of(self.entries(ta), "baseline-recorded")), 1)
        self.assertAlive()

        # SIGHUP with a broken file: an error naming the file, and the old
        # configuration goes on polling both targets.
        config.write_text("api = { base_url = ;\n", encoding="utf-8")
        reload_cursor = harness.journal_cursor()
        self.daemon.send_signal(signal.SIGHUP)
        errors = harness.wait_for_entries(
            [f"_PID={self.daemon.pid}"],
            lambda es: any(int(e.get("PRIORITY", 7)) <= PRIORITY_ERR and str(config) in e.get("MESSAGE", "")
                           for e in es),
            5, reload_cursor)
        self.assertTrue([e for e in errors if int(e.get("PRIORITY", 7)) <= PRIORITY_ERR
                         and str(config) in e.get("MESSAGE", "")],
                        f"no error entry naming {config}:\n{harness.describe(errors)}")
        self.assertAlive()
        self.mock.set_users(a, a_users)
        gained = self.wait_event(ta, "protection-gained")[0]
        self.assertFields(gained, CBM365_USER_ID="a1", CBM365_MODULE="mailbox")
        self.assertAlive()

        elapsed = self.stop_daemon()
        self.assertLess(elapsed, STOP_SEC)
        self.assertSnapshotsComplete()
        self.assertTrue(self.snapshot_path(a).is_file())
        self.assertTrue(self.snapshot_path(b).is_file())

        # After its first poll, which comes early, target a was polled once an
        # interval; the broken reload did not add a poll either.
        starts = [r["time"] for r in self.mock.users_requests(a, page=1)]
        gaps = [round(later - earlier, 1) for earlier, later in zip(starts, starts[1:])]
        with self.subTest(check="interval"):
            self.assertGreaterEqual(min(gaps[1:], default=INTERVAL_SEC), INTERVAL_SEC - 1,
                                    f"seconds between polls of target a: {gaps}")

        # A cycle cannot poll more targets than there are.
        for summary in self.summaries():
            with self.subTest(summary=summary.get("MESSAGE")):
                done = int(summary["CBM365_TARGETS_POLLED"]) + int(summary["CBM365_TARGETS_FAILED"])
                self.assertLessEqual(done, int(summary["CBM365_TARGETS"]))


class OutageTest(DaemonTestCase):

    def test_outage_logged_once_then_recovery(self):
        users = [user(f"o{i}", f"o{i}@d.example", f"O {i}", mailbox=True, onedrive=True) for i in range(1, 6)]
        ten = self.tenant("o", users)
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt], interval=INTERVAL_SEC, page_size=2)

        self.start_daemon(config)
        self.wait_event(tgt, "baseline-recorded", timeout=FIRST_POLL_SEC, CBM365_USERS=5)
        snapshot = self.snapshot_path(ten)
        saved = snapshot.read_bytes()

        # o5 leaves while page 2 fails, for two polls in a row. The fault is
        # set first, so that no poll gets the change without the fault.
        self.mock.add_faults({"endpoint": "users", "customer_id": ten["customer_id"], "tenant_id": ten["tenant_id"],
                              "page": 2, "times": 0, "action": "status", "status": 500})
        self.mock.set_users(ten, users[:4])
        failed = self.wait_event(tgt, "poll-failed")[0]
        self.assertFields(failed, CBM365_HTTP_STATUS=500, PRIORITY=PRIORITY_WARNING)
        self.assertTrue(failed.get("CBM365_REQUEST_ID"), "poll-failed without CBM365_REQUEST_ID")
        failed_cycles = len([s for s in self.summaries() if s.get("CBM365_TARGETS_FAILED") == "1"])
        entries = harness.wait_for_entries(
            ["CBM365_EVENT=poll-summary", f"_PID={self.daemon.pid}"],
            lambda es: len([s for s in es if s.get("CBM365_TARGETS_FAILED") == "1"]) > failed_cycles,
            NEXT_POLL_SEC, self.cursor)
        self.assertGreater(len([s for s in entries if s.get("CBM365_TARGETS_FAILED") == "1"]), failed_cycles,
                           "no second failed poll")
        target_entries = self.entries(tgt)
        self.assertEqual(len(harness.events_of(target_entries, "poll-failed")), 1,
                         f"poll-failed more than once in one outage:\n{harness.describe(target_entries)}")
        self.assertNoUserEvents(target_entries)
        self.assertEqual(snapshot.read_bytes(), saved, "a failed poll changed the snapshot")

        # The API recovers: poll-recovered, then the change that waited.
        self.mock.clear_faults()
        self.wait_event(tgt, "user-removed", CBM365_USER_ID="o5")
        target_entries = self.entries(tgt)
        recovered = self.one_event(target_entries, "poll-recovered")
        removed = self.one_event(target_entries, "user-removed")
        # journalctl prints entries in the order journald stored them.
        self.assertLess(target_entries.index(recovered), target_entries.index(removed),
                        "poll-recovered must come before the change")

        # SIGTERM while a page is in flight: the daemon stops at once and
        # leaves the last complete snapshot.
        # The mock records a request when it has answered, so the count of
        # users requests shows a poll in flight.
        begun = self.mock.stats()["users_requests"]
        self.mock.add_faults({"endpoint": "users", "customer_id": ten["customer_id"], "tenant_id": ten["tenant_id"],
                              "page": 1, "times": 0, "action": "delay", "delay_ms": 8000})
        self.mock.set_users(ten, users[:3])
        saved = snapshot.read_bytes()
        deadline = time.monotonic() + NEXT_POLL_SEC
        while self.mock.stats()["users_requests"] == begun and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertGreater(self.mock.stats()["users_requests"], begun, "no poll began")
        self.stop_daemon()
        self.assertSnapshotsComplete()
        self.assertEqual(snapshot.read_bytes(), saved, "the cancelled poll changed the snapshot")


class StateTest(DaemonTestCase):

    def messages(self):
        return [e.get("MESSAGE", "") for e in harness.journal_entries([f"_PID={self.daemon.pid}"], self.cursor)]

    def wait_message(self, text, timeout=NEXT_POLL_SEC):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages()):
                return
            time.sleep(0.5)
        self.fail(f"no message containing {text!r} within {timeout} s; messages: {self.messages()}")

    def test_state_directory_locked(self):
        ten = self.tenant("l", [user("l1", "lee@d.example", "Lee", mailbox=True)])
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt], interval=INTERVAL_SEC)
        self.start_daemon(config)
        self.wait_event(tgt, "baseline-recorded", timeout=FIRST_POLL_SEC)

        second = harness.run_daemon(["-c", str(config), "--once", "--log-target=console"], timeout=30)

        self.assertEqual(second.status, 1, second.output())
        self.assertIn("is in use by another cbm365-watchd", second.stderr)
        self.assertAlive()
        self.stop_daemon()
        self.assertSnapshotsComplete()

    def test_failed_save_kept_in_memory(self):
        # A small tmpfs as the state directory, filled up once the baseline is saved.
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(self.state_dir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.addCleanup(subprocess.run, ["umount", "-l", str(self.state_dir)])
        users = [user(f"s{i}", f"s{i}@d.example", f"User {i}", mailbox=True) for i in range(1, 4)]
        ten = self.tenant("s", users)
        self.start_mock([ten])
        tgt = self.target(ten)
        self.start_daemon(self.write_config([tgt], interval=INTERVAL_SEC))
        self.wait_event(tgt, "baseline-recorded", timeout=FIRST_POLL_SEC)
        snapshot = self.snapshot_path(ten)
        saved = snapshot.read_bytes()

        filler = self.state_dir / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        self.mock.set_users(ten, [user("s1", "s1@d.example", "User 1", mailbox=False)] + users[1:])

        self.wait_event(tgt, "protection-lost", CBM365_USER_ID="s1")
        self.wait_message("keeping it in memory")
        self.assertEqual(snapshot.read_bytes(), saved, "a failed save changed the snapshot")
        self.assertAlive()

        # The next poll diffs against the view kept in memory: no repeated alert.
        polls = len(self.mock.users_requests(ten))
        deadline = time.monotonic() + NEXT_POLL_SEC
        while len(self.mock.users_requests(ten)) == polls and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        self.assertEqual(len(harness.events_of(self.entries(tgt), "protection-lost")), 1)

        filler.unlink()
        self.wait_message("Saved snapshot", timeout=NEXT_POLL_SEC + 10)
        self.assertNotEqual(snapshot.read_bytes(), saved, "the snapshot was not saved once space came back")
        self.assertEqual(len(harness.events_of(self.entries(tgt), "protection-lost")), 1)
        self.stop_daemon()


if __name__ == "__main__":
    harness.main()
