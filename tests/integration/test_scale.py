#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cbm365-watchd under load and trouble: throttling, backoff, inconsistent pages,
mass changes held, and reloads and stops with many targets in flight."""

import email.utils
import signal
import time

import harness
from harness import user
from test_daemon import DaemonTestCase
from test_failures import fault

# Constants of the daemon under test (daemon/poll.h, daemon/scheduler.c).
POLL_THROTTLE_RETRIES = 5
INTERVAL_SEC = 10               # the smallest poll.interval the configuration accepts
FIRST_POLL_SEC = 15             # a target without a snapshot is polled about 10 s after start

# A request the daemon had sent before it read a 429 may reach the mock
# after the 429 did. Such requests start within this many seconds of it.
IN_FLIGHT_GRACE_SEC = 0.5
# The mock and the daemon read the same clock, so this covers rounding only.
CLOCK_SLACK_SEC = 0.05
PRIORITY_WARNING = 4


def many_users(prefix, n, mailbox=True):
    return [user(f"{prefix}{i:03d}", f"{prefix}{i:03d}@scale.example", f"User {i}", mailbox=mailbox, onedrive=True)
            for i in range(n)]


def users_requests(mock):
    return [r for r in mock.requests() if str(r.get("path", "")).endswith("/users/batch")]


def tenant_of(recorded, tenants):
    """Return the tenant whose users/batch path the recorded request has, or None."""
    for t in tenants:
        if f"/customers/{t['customer_id']}/tenants/{t['tenant_id']}/" in str(recorded.get("path", "")):
            return t
    return None


def by_target(entries):
    """Group journal entries by CBM365_TARGET."""
    grouped = {}
    for e in entries:
        grouped.setdefault(e.get("CBM365_TARGET"), []).append(e)
    return grouped


class ScaleTestCase(DaemonTestCase):

    def tenants(self, prefix, count, n_users):
        return [self.tenant(f"{prefix}{i:02d}", many_users(f"{prefix}{i:02d}u", n_users)) for i in range(count)]

    def assertNoStartDuringPause(self, requests, throttled, pause_end, max_parallel):
        """Assert that no users/batch request starts between the throttled one and pause_end.

        Requests the daemon had in flight when it read the throttled reply are allowed.
        """
        begin = throttled["time"]
        inside = [r for r in requests if r is not throttled and begin <= r["time"] < pause_end - CLOCK_SLACK_SEC]
        late = [r for r in inside if r["time"] > begin + IN_FLIGHT_GRACE_SEC]
        listing = "\n".join(f"{r['time'] - begin:+.3f} s page {harness.query_value(r, 'pageIndex')} "
                            f"{r['path'][-70:]} -> {r.get('status')}" for r in requests)
        self.assertEqual(late, [], f"requests started during the {pause_end - begin:.2f} s pause "
                                   f"(times from the throttled one):\n{listing}")
        # At most max_parallel - 1 others were in flight, and the replies the
        # daemon read together with the 429 may each have started one more
        # before the 429's own callback ran.
        self.assertLessEqual(len(inside), 2 * (max_parallel - 1),
                             f"more requests started after the throttled one than were in flight:\n{listing}")


class ThrottleTest(ScaleTestCase):

    def run_throttled(self, retry_after, count=6, n_users=16):
        """Poll count tenants of 8 pages each (100 ms a page, 4 in flight), with a 429 on page 2 of the first.

        The 429's Retry-After is what retry_after() returns just before the run.
        Returns (run, tenants, the throttled request).
        """
        tenants = self.tenants("t", count, n_users)
        self.start_mock(tenants, mock_args=["--delay-ms", "100"])
        self.mock.add_faults(fault(tenants[0], "status", page=2, times=1, status=429,
                                   headers={"Retry-After": retry_after()}))
        targets = [self.target(t) for t in tenants]
        config = self.write_config(targets, page_size=2, max_parallel=4)

        run = self.run_once(config)

        self.assertExit(run, 0)
        grouped = by_target(self.run_entries(run))
        for tgt in targets:
            with self.subTest(target=tgt["name"]):
                entries = grouped.get(tgt["name"], [])
                self.one_event(entries, "baseline-recorded", CBM365_USERS=n_users)
                self.assertEqual(harness.events_of(entries, "poll-failed"), [])
        throttled = [r for r in users_requests(self.mock) if str(r.get("status")) == "429"]
        self.assertEqual(len(throttled), 1, self.mock.describe_requests())
        return run, tenants, throttled[0]

    def test_retry_after_date(self):
        dates = []

        def date_ahead():
            # Whole seconds: the date is 2 to 3 s ahead when the run starts.
            dates.append(email.utils.formatdate(time.time() + 3, usegmt=True))
            return dates[0]

        run, tenants, throttled = self.run_throttled(date_ahead)

        pause_end = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        self.assertGreater(pause_end - throttled["time"], 1, "the 429 came too late to test a pause")

        requests = users_requests(self.mock)
        self.assertNoStartDuringPause(requests, throttled, pause_end, 4)
        retried = [r for r in self.mock.users_requests(tenants[0], page=2) if str(r.get("status")) == "200"]
        self.assertEqual(len(retried), 1, self.mock.describe_requests())
        self.assertGreaterEqual(retried[0]["time"], pause_end - CLOCK_SLACK_SEC, "page 2 retried before the date")

    def test_retry_after_seconds_pauses_all_targets(self):
        run, tenants, throttled = self.run_throttled(lambda: "2")

        requests = users_requests(self.mock)
        self.assertNoStartDuringPause(requests, throttled, throttled["time"] + 2, 4)
        others = [r for r in requests if tenant_of(r, tenants) is not tenants[0] and r["time"] > throttled["time"] + 2]
        self.assertTrue(others, "no other target's request came after the pause: the test proves nothing\n"
                        + self.mock.describe_requests())

    def test_503_without_retry_after_backs_off(self):
        ten = self.tenant("b", many_users("b", 5))
        self.start_mock([ten], faults=[fault(ten, "status", page=2, times=1, status=503)])
        tgt = self.target(ten)
        config = self.write_config([tgt], page_size=2)

        run = self.run_once(config)

        self.assertExit(run, 0)
        entries = self.run_events(run, tgt["name"])
        self.one_event(entries, "baseline-recorded", CBM365_USERS=5)
        page2 = self.mock.users_requests(ten, page=2)
        self.assertEqual([str(r.get("status")) for r in page2], ["503", "200"], self.mock.describe_requests())
        gap = page2[1]["time"] - page2[0]["time"]
        # The first backoff is HTTP_BACKOFF_BASE_SEC (1 s) with jitter on its upper half.
        self.assertGreaterEqual(gap, 0.5 - CLOCK_SLACK_SEC, "page 2 asked again too soon after the 503")
        self.assertLess(gap, 2.0, "the first backoff was longer than 1 s")

    def test_429_storm_bounded(self):
        storm = self.tenant("storm", many_users("s", 3))
        healthy = self.tenant("calm", many_users("c", 3))
        self.start_mock([storm, healthy], faults=[fault(storm, "status", times=0, status=429,
                                                        headers={"Retry-After": "1"})])
        targets = [self.target(storm), self.target(healthy)]
        config = self.write_config(targets)

        run = self.run_once(config, timeout=60)

        self.assertExit(run, 2)
        self.assertLess(run.elapsed, 20, "the throttled run took too long")
        entries = self.run_events(run, targets[0]["name"])
        failed = self.one_event(entries, "poll-failed")
        self.assertFields(failed, CBM365_HTTP_STATUS=429)
        self.assertNoUserEvents(entries)
        self.one_event(self.run_events(run, targets[1]["name"]), "baseline-recorded", CBM365_USERS=3)

        requests = self.mock.users_requests(storm)
        self.assertLessEqual(len(requests), POLL_THROTTLE_RETRIES + 1, self.mock.describe_requests())
        self.assertGreaterEqual(len(requests), 2, "the 429 was never retried")
        starts = [r["time"] for r in requests]
        gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
        self.assertGreaterEqual(min(gaps), 1 - CLOCK_SLACK_SEC, f"Retry-After: 1 not waited out: gaps {gaps}")


class TokenBackoffTest(ScaleTestCase):

    def test_refused_secret_one_token_request(self):
        tenants = self.tenants("k", 20, 2)
        self.start_mock(tenants, secret=f"right-{self.secret}")
        targets = [self.target(t) for t in tenants]
        config = self.write_config(targets)

        run = self.run_once(config)

        self.assertExit(run, 2)
        # The later targets get the cached error at once, not after the backoff.
        self.assertLess(run.elapsed, 4, "targets waited for the token backoff")
        grouped = by_target(self.run_entries(run))
        for tgt in targets:
            with self.subTest(target=tgt["name"]):
                failed = self.one_event(grouped.get(tgt["name"], []), "poll-failed")
                self.assertIn("invalid_client", failed.get("CBM365_REASON", ""))
        self.assertLessEqual(self.mock.stats()["token_requests"], 2, self.mock.describe_requests())
        self.assertEqual(users_requests(self.mock), [])


class ConnectionsTest(ScaleTestCase):

    def test_connections_bounded(self):
        tenants = self.tenants("n", 40, 6)
        self.start_mock(tenants)
        targets = [self.target(t) for t in tenants]
        config = self.write_config(targets, page_size=2, max_parallel=4)
        self.mock.call("DELETE", "/_mock/stats")

        run = self.run_once(config, timeout=60)

        self.assertExit(run, 0)
        stats = self.mock.stats()
        # The stats request itself came on one more connection.
        self.assertLessEqual(stats["connections"] - 1, 4 + 1, f"mock stats: {stats}")
        self.assertLessEqual(stats["max_concurrent"], 4, f"mock stats: {stats}")
        self.assertEqual(stats["users_requests"], 40 * 3, f"mock stats: {stats}")
        summary = self.summary_of(run)
        self.assertFields(summary, CBM365_TARGETS=40, CBM365_TARGETS_POLLED=40, CBM365_TARGETS_FAILED=0)


class InconsistentPagesTest(ScaleTestCase):

    def test_pages_that_do_not_add_up(self):
        restarted = self.tenant("r", many_users("r", 5))
        shifted = self.tenant("s", many_users("s", 5))
        duplicated = self.tenant("d", many_users("d", 5))
        self.start_mock([restarted, shifted, duplicated])
        kept = [self.target(shifted), self.target(duplicated)]
        first = self.run_once(self.write_config(kept, page_size=2))
        self.assertExit(first, 0)
        saved = {t["customer_id"]: self.snapshot_path(t).read_bytes() for t in (shifted, duplicated)}

        # Users that leave would be reported if an inconsistent read were taken.
        self.mock.set_users(shifted, shifted["users"][:4])
        self.mock.set_users(duplicated, duplicated["users"][1:])
        self.mock.add_faults(fault(restarted, "shift-total", page=2, times=1),
                             fault(shifted, "shift-total", page=2, times=0),
                             fault(duplicated, "duplicate-user", page=2, times=0))
        self.mock.clear_requests()
        targets = [self.target(restarted)] + kept
        run = self.run_once(self.write_config(targets, page_size=2))

        self.assertExit(run, 2)
        grouped = by_target(self.run_entries(run))
        entries = grouped.get(targets[0]["name"], [])
        self.one_event(entries, "baseline-recorded", CBM365_USERS=5)
        self.assertEqual(harness.events_of(entries, "poll-failed"), [])
        self.assertEqual(len(self.mock.users_requests(restarted, page=1)), 2, self.mock.describe_requests())

        for tenant, tgt in ((shifted, targets[1]), (duplicated, targets[2])):
            with self.subTest(target=tgt["name"]):
                entries = grouped.get(tgt["name"], [])
                failed = self.one_event(entries, "poll-failed")
                self.assertTrue(failed.get("CBM365_REASON", "").startswith("inconsistent"), harness.describe([failed]))
                self.assertNoUserEvents(entries)
                self.assertEqual(self.snapshot_path(tenant).read_bytes(), saved[tenant["customer_id"]])
                # One restart from page 1, not more.
                self.assertEqual(len(self.mock.users_requests(tenant, page=1)), 2, self.mock.describe_requests())


class MassChangeTest(ScaleTestCase):

    def held_path(self, tenant):
        return self.state_dir / f"{tenant['customer_id']}_{tenant['tenant_id']}.held"

    def snapshot_users(self, tenant):
        return int(self.snapshot_path(tenant).read_bytes().split(b"\n")[1].split()[1])

    def test_held_confirmed_retracted(self):
        confirmed = self.tenant("a", many_users("a", 30))
        retracted = self.tenant("b", many_users("b", 30))
        lost = self.tenant("e", many_users("e", 30))
        boundary = self.tenant("f", many_users("f", 30))
        small = self.tenant("c", many_users("c", 10))
        tenants = [confirmed, retracted, lost, boundary, small]
        self.start_mock(tenants)
        names = {t["customer_id"]: self.target(t)["name"] for t in tenants}
        config = self.write_config([self.target(t) for t in tenants])
        self.assertExit(self.run_once(config), 0)
        saved = {t["customer_id"]: self.snapshot_path(t).read_bytes() for t in tenants}

        # set_users() replaces a tenant's "users": keep the full list of b.
        retracted_users = list(retracted["users"])
        self.mock.set_users(confirmed, confirmed["users"][:10])
        self.mock.set_users(retracted, retracted["users"][:10])
        self.mock.set_users(lost, many_users("e", 16, mailbox=False) + lost["users"][16:])
        self.mock.set_users(boundary, boundary["users"][:15])     # 50 %: not more than hold_percent
        self.mock.set_users(small, small["users"][:2])             # under hold_min_users
        held_run = self.run_once(config)

        self.assertExit(held_run, 0)
        grouped = by_target(self.run_entries(held_run))
        for tenant, removed, lost_count in ((confirmed, 20, 0), (retracted, 20, 0), (lost, 0, 16)):
            with self.subTest(held=tenant["customer_id"]):
                entries = grouped.get(names[tenant["customer_id"]], [])
                held = self.one_event(entries, "changes-held")
                self.assertFields(held, CBM365_USERS=30, CBM365_REMOVED=removed, CBM365_LOST=lost_count)
                self.assertNoUserEvents(entries)
                self.assertEqual(self.snapshot_path(tenant).read_bytes(), saved[tenant["customer_id"]])
                self.assertTrue(self.held_path(tenant).exists(), "no .held file for a held change")
        for tenant, removed in ((boundary, 15), (small, 8)):
            with self.subTest(logged=tenant["customer_id"]):
                entries = grouped.get(names[tenant["customer_id"]], [])
                self.assertEqual(harness.events_of(entries, "changes-held"), [])
                self.assertEqual(len(harness.events_of(entries, "user-removed")), removed, harness.describe(entries))
                self.assertFalse(self.held_path(tenant).exists())

        # The same mass change again confirms it; a retracted one leaves
        # only the one real removal against the kept snapshot.
        self.mock.set_users(retracted, retracted_users[:29])
        final_run = self.run_once(config)

        self.assertExit(final_run, 0)
        grouped = by_target(self.run_entries(final_run))
        for tenant, kind, count, users_left in ((confirmed, "user-removed", 20, 10), (retracted, "user-removed", 1, 29),
                                                (lost, "protection-lost", 16, 30)):
            with self.subTest(released=tenant["customer_id"]):
                entries = grouped.get(names[tenant["customer_id"]], [])
                self.assertEqual(harness.events_of(entries, "changes-held"), [])
                self.assertEqual(len(harness.events_of(entries, *harness.USER_EVENTS)), count, harness.describe(entries))
                self.assertEqual(len(harness.events_of(entries, kind)), count, harness.describe(entries))
                self.assertEqual(self.snapshot_users(tenant), users_left)
                self.assertFalse(self.held_path(tenant).exists(), ".held file left after the poll that released it")
        removed = self.one_event(grouped.get(names[retracted["customer_id"]], []), "user-removed")
        self.assertFields(removed, CBM365_USER_ID="b029")
        for tenant in (boundary, small):
            self.assertNoUserEvents(grouped.get(names[tenant["customer_id"]], []))

    def test_foreign_marker_files_ignored(self):
        # Directories in place of the .held and .outage records neither skip
        # the hold nor raise a poll-recovered.
        ten = self.tenant("m", many_users("m", 30))
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt])
        self.assertExit(self.run_once(config), 0)
        stem = f"{ten['customer_id']}_{ten['tenant_id']}"
        (self.state_dir / f"{stem}.held").mkdir()
        (self.state_dir / f"{stem}.outage").mkdir()
        self.mock.set_users(ten, ten["users"][:10])

        run = self.run_once(config)

        self.assertExit(run, 0)
        entries = self.run_events(run, tgt["name"])
        self.one_event(entries, "changes-held", CBM365_USERS=30, CBM365_REMOVED=20)
        self.assertEqual(harness.events_of(entries, "user-removed"), [])
        self.assertEqual(harness.events_of(entries, "poll-recovered"), [])
        messages = [e.get("MESSAGE", "") for e in self.run_entries(run)]
        self.assertTrue(any(f"Ignoring {stem}.held" in m for m in messages), messages)
        self.assertTrue(any(f"Ignoring {stem}.outage" in m for m in messages), messages)

    def test_hold_percent_zero_disables(self):
        ten = self.tenant("z", many_users("z", 30))
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt], hold_percent=0)
        self.assertExit(self.run_once(config), 0)

        self.mock.set_users(ten, ten["users"][:10])
        run = self.run_once(config)

        self.assertExit(run, 0)
        entries = self.run_events(run, tgt["name"])
        self.assertEqual(harness.events_of(entries, "changes-held"), [])
        self.assertEqual(len(harness.events_of(entries, "user-removed")), 20, harness.describe(entries))
        self.assertFalse(self.held_path(ten).exists())
        self.assertEqual(self.snapshot_users(ten), 10)


class FailureIsolationTest(ScaleTestCase):

    # Long enough for 4 polls of a healthy target and 3 of one backing off
    # (polled 10 s, then 20 s, then 40 s apart).
    WINDOW_SEC = 38

    def test_forbidden_tenant_backs_off(self):
        forbidden = self.tenant("x", many_users("x", 2))
        healthy = self.tenants("h", 4, 2)
        self.start_mock([forbidden] + healthy,
                        faults=[fault(forbidden, "status", times=0, status=403,
                                      body='{"error": "forbidden", "message": "no access to this tenant"}')])
        targets = [self.target(t) for t in [forbidden] + healthy]
        config = self.write_config(targets, interval=INTERVAL_SEC)

        self.start_daemon(config)
        for tgt in targets[1:]:
            self.wait_event(tgt, "baseline-recorded", timeout=FIRST_POLL_SEC, CBM365_USERS=2)
        self.wait_event(targets[0], "poll-failed", timeout=FIRST_POLL_SEC)
        first = {t["customer_id"]: min(r["time"] for r in self.mock.users_requests(t)) for t in [forbidden] + healthy}
        time.sleep(max(0.0, max(first.values()) + self.WINDOW_SEC - time.time()))
        self.assertAlive()
        self.stop_daemon()

        def polls(tenant):
            return [r for r in self.mock.users_requests(tenant, page=1)
                    if r["time"] < first[tenant["customer_id"]] + self.WINDOW_SEC]

        entries = self.entries(targets[0])
        failed = self.one_event(entries, "poll-failed")
        self.assertFields(failed, CBM365_HTTP_STATUS=403, PRIORITY=PRIORITY_WARNING)
        ids = [r.get("request_id") for r in self.mock.users_requests(forbidden)]
        self.assertIn(failed.get("CBM365_REQUEST_ID"), ids)
        forbidden_starts = [r["time"] for r in polls(forbidden)]
        gaps = [round(later - earlier, 1) for earlier, later in zip(forbidden_starts, forbidden_starts[1:])]
        self.assertEqual(len(forbidden_starts), 3, f"polls of the failing target {gaps} s apart")
        self.assertGreaterEqual(gaps[0], INTERVAL_SEC - 0.5, f"polls of the failing target {gaps} s apart")
        self.assertGreaterEqual(gaps[1], 2 * INTERVAL_SEC - 0.5, f"polls of the failing target {gaps} s apart")

        for tenant, tgt in zip(healthy, targets[1:]):
            with self.subTest(target=tgt["name"]):
                self.one_event(self.entries(tgt), "baseline-recorded")
                self.assertEqual(harness.events_of(self.entries(tgt), "poll-failed"), [])
                count = len(polls(tenant))
                self.assertGreaterEqual(count, 4, f"healthy target polled {count} times in {self.WINDOW_SEC} s")
                self.assertLess(len(forbidden_starts), count)


class ReloadUnderLoadTest(ScaleTestCase):

    def test_reload_mid_cycle(self):
        tenants = self.tenants("l", 45, 10)
        self.start_mock(tenants, mock_args=["--delay-ms", "150"])
        targets = [self.target(t) for t in tenants]
        initial, added = targets[:40], targets[40:]
        config = self.write_config(initial, interval=INTERVAL_SEC, page_size=2, max_parallel=4)
        # Slow first pages make polls pile up, so that the reload finds targets
        # polling, waiting for a poll slot and waiting for their turn.
        self.mock.add_faults({"endpoint": "users", "page": 1, "times": 0, "action": "delay", "delay_ms": 1500})

        self.start_daemon(config)
        baselines = harness.wait_for_entries([f"_PID={self.daemon.pid}", "CBM365_EVENT=baseline-recorded"],
                                             lambda e: len(e) >= 8, FIRST_POLL_SEC, self.cursor)
        self.assertGreaterEqual(len(baselines), 8, "the first cycle did not start")
        self.assertLess(len(baselines), 40, "the first cycle ended before the reload: the test proves nothing")

        # Removed and changed first: targets with a page answered and no
        # baseline yet (still in flight), then ones without a page answered.
        done = {e.get("CBM365_TARGET") for e in baselines}
        answered = {tenant_of(r, tenants)["customer_id"] for r in users_requests(self.mock)}
        in_flight = [t for t in initial if t["customer_id"] in answered and t["name"] not in done]
        waiting = [t for t in initial if t["customer_id"] not in answered]
        removed = (in_flight + waiting)[:5]
        changed = [t for t in in_flight + waiting if t not in removed][:5]
        for tgt in changed:
            tgt["interval"] = 2 * INTERVAL_SEC
        new_targets = [t for t in initial if t not in removed] + added
        self.write_config(new_targets, interval=INTERVAL_SEC, page_size=2, max_parallel=4)
        self.daemon.send_signal(signal.SIGHUP)
        self.mock.clear_faults()
        reloaded = harness.wait_for_entries([f"_PID={self.daemon.pid}", "MESSAGE=Configuration reloaded"],
                                            lambda e: len(e) > 0, 10, self.cursor)
        self.assertTrue(reloaded, f"no 'Configuration reloaded' entry; output: {self.output()}")
        reload_time = int(reloaded[0]["__REALTIME_TIMESTAMP"]) / 1e6

        for tgt in new_targets:
            self.wait_event(tgt, "baseline-recorded", timeout=FIRST_POLL_SEC + 10)
        time.sleep(1)
        self.assertAlive()
        self.stop_daemon()

        grouped = by_target(harness.journal_entries([f"_PID={self.daemon.pid}"], self.cursor))
        for tgt in targets:
            with self.subTest(target=tgt["name"]):
                count = len(harness.events_of(grouped.get(tgt["name"], []), "baseline-recorded"))
                self.assertLessEqual(count, 1, "more than one baseline-recorded")
                if tgt not in removed:
                    self.assertEqual(count, 1)
        removed_tenants = [t for t in tenants if any(t["customer_id"] == r["customer_id"] for r in removed)]
        late = [f"{r['time'] - reload_time:+.2f} s {r['path'][-60:]}" for r in users_requests(self.mock)
                if tenant_of(r, removed_tenants) and r["time"] > reload_time + IN_FLIGHT_GRACE_SEC]
        self.assertEqual(late, [], "removed targets polled after the reload")
        self.assertSnapshotsComplete()


class StopUnderLoadTest(ScaleTestCase):

    def test_sigterm_mid_cycle(self):
        tenants = self.tenants("m", 40, 10)
        self.start_mock(tenants, mock_args=["--delay-ms", "150"])
        config = self.write_config([self.target(t) for t in tenants], interval=INTERVAL_SEC,
                                   page_size=2, max_parallel=4)

        self.start_daemon(config)
        baselines = harness.wait_for_entries([f"_PID={self.daemon.pid}", "CBM365_EVENT=baseline-recorded"],
                                             lambda e: len(e) >= 5, FIRST_POLL_SEC, self.cursor)
        self.assertGreaterEqual(len(baselines), 5, "the first cycle did not start")
        self.assertLess(len(baselines), 40, "the first cycle ended before SIGTERM: the test proves nothing")

        elapsed = self.stop_daemon()

        self.assertLess(elapsed, 5)
        snapshots = list(self.state_dir.glob("*.snapshot"))
        self.assertGreaterEqual(len(snapshots), 5)
        self.assertSnapshotsComplete()
        self.assertEqual([p.name for p in self.state_dir.iterdir() if ".tmp-" in p.name], [])


if __name__ == "__main__":
    harness.main()
