#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cbm365-watchd --once when the API fails: a poll is all or nothing, and the reason is logged."""

import json

import harness
from harness import user

PRIORITY_WARNING = 4


def five_users(prefix):
    return [user(f"{prefix}{i}", f"{prefix}{i}@f.example", f"User {i}", mailbox=True, onedrive=i != 3)
            for i in range(1, 6)]


def fault(tenant, action, page=None, endpoint="users", times=0, **extra):
    f = {"endpoint": endpoint, "action": action, "times": times}
    if endpoint == "users":
        f["customer_id"] = tenant["customer_id"]
        f["tenant_id"] = tenant["tenant_id"]
    if page is not None:
        f["page"] = page
    f.update(extra)
    return f


class FailedPageTest(harness.IntegrationTestCase):

    def test_failed_page_changes_nothing(self):
        ten = self.tenant("f", five_users("f"))
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt], page_size=2)
        first = self.run_once(config)
        self.assertExit(first, 0)
        self.one_event(self.run_events(first, tgt["name"]), "baseline-recorded", CBM365_USERS=5)
        snapshot = self.snapshot_path(ten)
        saved = snapshot.read_bytes()

        # f5 leaves the tenant while page 2 of the 2 remaining pages fails:
        # the users on page 2 must not be reported as removed, nor f5.
        self.mock.set_users(ten, five_users("f")[:4])
        self.mock.add_faults(fault(ten, "status", page=2, status=500, body='{"error": "internal"}'))
        self.mock.clear_requests()

        failed = self.run_once(config)

        self.assertExit(failed, 2)
        entries = self.run_events(failed, tgt["name"])
        poll_failed = self.one_event(entries, "poll-failed")
        failing_ids = [r.get("request_id") for r in self.mock.users_requests(ten, page=2)
                       if str(r.get("status")) == "500"]
        self.assertTrue(failing_ids, "the mock recorded no failed request of page 2")
        self.assertFields(poll_failed, CBM365_HTTP_STATUS=500, CBM365_CUSTOMER_ID=ten["customer_id"],
                          CBM365_TENANT_ID=ten["tenant_id"], PRIORITY=PRIORITY_WARNING)
        self.assertIn(poll_failed.get("CBM365_REQUEST_ID"), failing_ids)
        self.assertTrue(poll_failed.get("CBM365_REASON"), "poll-failed without CBM365_REASON")
        self.assertNoUserEvents(entries)
        self.assertEqual(harness.events_of(entries, "baseline-recorded"), [])
        self.assertEqual(snapshot.read_bytes(), saved, "a failed poll changed the snapshot")
        summary = self.summary_of(failed)
        self.assertIsNotNone(summary, "no poll-summary entry")
        self.assertFields(summary, CBM365_TARGETS=1, CBM365_TARGETS_POLLED=0, CBM365_TARGETS_FAILED=1)

        # The outage outlives the process: a second failed run logs no
        # second poll-failed, and the first good run logs poll-recovered.
        outage = self.state_dir / f"{ten['customer_id']}_{ten['tenant_id']}.outage"
        self.assertTrue(outage.exists(), "no outage file after a failed poll")
        failed_again = self.run_once(config)
        self.assertExit(failed_again, 2)
        self.assertEqual(harness.events_of(self.run_events(failed_again, tgt["name"]), "poll-failed"), [])

        self.mock.clear_faults()
        recovered = self.run_once(config)

        self.assertExit(recovered, 0)
        entries = self.run_events(recovered, tgt["name"])
        removed = self.one_event(entries, "user-removed")
        self.assertFields(removed, CBM365_USER_ID="f5", CBM365_USER_EMAIL="f5@f.example")
        self.assertEqual(len(harness.events_of(entries, *harness.USER_EVENTS)), 1, harness.describe(entries))
        self.assertEqual(harness.events_of(entries, "poll-failed"), [])
        self.one_event(entries, "poll-recovered")
        kinds = [e["CBM365_EVENT"] for e in entries]
        self.assertLess(kinds.index("poll-recovered"), kinds.index("user-removed"), harness.describe(entries))
        self.assertFalse(outage.exists(), "the outage file outlived the recovery")


class BadReplyTest(harness.IntegrationTestCase):

    def test_bad_replies_fail_the_poll(self):
        # One target per kind of bad reply, on a first poll, plus one healthy
        # target that must not suffer from the others.
        actions = ("malformed", "truncate", "shift-total", "duplicate-user", "drop-connection")
        tenants = {action: self.tenant(action, five_users(action[:2])) for action in actions}
        healthy = self.tenant("healthy", five_users("h"))
        self.start_mock(list(tenants.values()) + [healthy])
        self.mock.add_faults(*[fault(t, action, page=2) for action, t in tenants.items()])
        targets = {action: self.target(t) for action, t in tenants.items()}
        config = self.write_config(list(targets.values()) + [self.target(healthy)], page_size=2)

        run = self.run_once(config)

        self.assertExit(run, 2)
        for action, tenant in tenants.items():
            with self.subTest(action=action):
                entries = self.run_events(run, targets[action]["name"])
                poll_failed = self.one_event(entries, "poll-failed")
                self.assertTrue(poll_failed.get("CBM365_REASON"), "poll-failed without CBM365_REASON")
                self.assertEqual(harness.events_of(entries, "baseline-recorded"), [])
                self.assertFalse(self.snapshot_path(tenant).exists(), "snapshot written after a failed poll")
        entries = self.run_events(run, self.target(healthy)["name"])
        self.one_event(entries, "baseline-recorded", CBM365_USERS=5)
        summary = self.summary_of(run)
        self.assertIsNotNone(summary, "no poll-summary entry")
        self.assertFields(summary, CBM365_TARGETS=6, CBM365_TARGETS_POLLED=1, CBM365_TARGETS_FAILED=5)


class TokenTest(harness.IntegrationTestCase):

    def test_expired_token_renewed_once(self):
        ten = self.tenant("exp", five_users("x")[:4])
        self.start_mock([ten], faults=[fault(ten, "expire-token", page=2, times=1)])
        tgt = self.target(ten)
        config = self.write_config([tgt], page_size=2)

        run = self.run_once(config)

        self.assertExit(run, 0)
        entries = self.run_events(run, tgt["name"])
        self.one_event(entries, "baseline-recorded", CBM365_USERS=4)
        self.assertEqual(harness.events_of(entries, "poll-failed"), [])
        self.assertEqual(len(self.mock.token_requests()), 2,
                         f"token requests: {json.dumps(self.mock.token_requests())[:2000]}")

    def test_wrong_secret_is_never_logged(self):
        ten = self.tenant("sec", five_users("s")[:2])
        self.start_mock([ten], secret=f"right-{self.secret}")
        tgt = self.target(ten)
        config = self.write_config([tgt])

        run = self.run_once(config)

        self.assertExit(run, 2)
        entries = self.run_events(run, tgt["name"])
        poll_failed = self.one_event(entries, "poll-failed")
        self.assertIn("invalid_client", poll_failed.get("CBM365_REASON", ""))
        # The daemon asked for a token, so it had read the secret it must not log.
        token_requests = [r for r in self.mock.token_requests() if (r.get("body") or {}).get("client_id") == self.client_id]
        self.assertTrue(token_requests, f"no token request for {self.client_id}")
        everything = harness.journal_entries([f"_PID={run.pid}"], run.cursor) + entries
        self.assertTrue(everything)
        self.assertNotIn(self.secret, json.dumps(everything, ensure_ascii=False))
        self.assertNotIn(self.secret, run.output())

    def test_token_endpoint_failure(self):
        ten = self.tenant("tok", five_users("t")[:2])
        self.start_mock([ten], faults=[fault(ten, "status", endpoint="token", status=503,
                                             headers={"Retry-After": "0"})])
        tgt = self.target(ten)
        config = self.write_config([tgt])

        run = self.run_once(config)

        self.assertExit(run, 2)
        entries = self.run_events(run, tgt["name"])
        poll_failed = self.one_event(entries, "poll-failed")
        self.assertTrue(poll_failed.get("CBM365_REASON"), "poll-failed without CBM365_REASON")
        self.assertFalse(self.snapshot_path(ten).exists())


class ThrottleTest(harness.IntegrationTestCase):

    def test_retry_after_waited_out(self):
        tenants = {status: self.tenant(f"t{status}", five_users(f"r{status}")[:4]) for status in (429, 503)}
        faults = [fault(t, "status", page=2, times=1, status=status, headers={"Retry-After": "1"})
                  for status, t in tenants.items()]
        self.start_mock(list(tenants.values()), faults=faults)
        targets = {status: self.target(t) for status, t in tenants.items()}
        config = self.write_config(list(targets.values()), page_size=2)

        run = self.run_once(config)

        self.assertExit(run, 0)
        self.assertGreaterEqual(run.elapsed, 1.0, "the daemon did not wait for Retry-After")
        for status, tenant in tenants.items():
            with self.subTest(status=status):
                entries = self.run_events(run, targets[status]["name"])
                self.one_event(entries, "baseline-recorded", CBM365_USERS=4)
                self.assertEqual(harness.events_of(entries, "poll-failed"), [])
                page2 = self.mock.users_requests(tenant, page=2)
                self.assertEqual([str(r.get("status")) for r in page2], [str(status), "200"])
                self.assertGreaterEqual(page2[1]["time"] - page2[0]["time"], 1.0,
                                        "the retry came before Retry-After had passed")


class CorruptSnapshotTest(harness.IntegrationTestCase):

    def test_unreadable_snapshot_set_aside(self):
        garbage = self.tenant("garbage", five_users("g"))
        halved = self.tenant("halved", five_users("h"))
        self.start_mock([garbage, halved])
        targets = [self.target(garbage), self.target(halved)]
        config = self.write_config(targets)
        first = self.run_once(config)
        self.assertExit(first, 0)

        whole = self.snapshot_path(halved).read_bytes()
        broken = {"garbage": b"this is not a snapshot\n\x00\xff", "halved": whole[:len(whole) // 2]}
        self.snapshot_path(garbage).write_bytes(broken["garbage"])
        self.snapshot_path(halved).write_bytes(broken["halved"])
        # Changes that would raise events if a broken file were read as a smaller tenant.
        for tenant in (garbage, halved):
            self.mock.set_users(tenant, [dict(u, moduleStatus=[{"module": 0, "isProtected": False}])
                                         for u in tenant["users"]])

        run = self.run_once(config)

        self.assertExit(run, 0)
        run_entries = self.run_entries(run)
        for tenant, target, key in ((garbage, targets[0], "garbage"), (halved, targets[1], "halved")):
            with self.subTest(snapshot=key):
                entries = self.run_events(run, target["name"])
                self.one_event(entries, "baseline-recorded", CBM365_USERS=5)
                self.assertNoUserEvents(entries)
                name = self.snapshot_path(tenant).name
                aside = sorted(self.state_dir.glob(name + ".corrupt-*"))
                self.assertEqual(len(aside), 1, f"files: {sorted(p.name for p in self.state_dir.iterdir())}")
                self.assertEqual(aside[0].read_bytes(), broken[key])
                self.assertTrue(self.snapshot_path(tenant).is_file(), "no new snapshot")
                self.assertNotEqual(self.snapshot_path(tenant).read_bytes(), broken[key])
                # The error names the file, so an operator can find it.
                errors = [e for e in run_entries
                          if int(e.get("PRIORITY", 7)) <= PRIORITY_WARNING and name in e.get("MESSAGE", "")]
                self.assertTrue(errors, f"no error naming {name}")


if __name__ == "__main__":
    harness.main()
