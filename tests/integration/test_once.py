#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cbm365-watchd --once against the mock API: baselines, then the events of each kind of change."""

import harness
from harness import user

PRIORITY_WARNING = 4
PRIORITY_NOTICE = 5
PRIORITY_INFO = 6


class BaselineTest(harness.IntegrationTestCase):

    def test_first_run_records_baseline(self):
        a = self.tenant("a", [user("a1", "ann@a.example", "Ann", mailbox=True, onedrive=True),
                              user("a2", "ben@a.example", "Ben", mailbox=False, onedrive=True),
                              user("a3", "cid@a.example", "Cid", mailbox=True, onedrive=True)])
        b = self.tenant("b", [user("b1", "dee@b.example", "Dee", mailbox=True, onedrive=True),
                              user("b2", "eve@b.example", "Eve", mailbox=True, onedrive=True)])
        self.start_mock([a, b])
        ta, tb = self.target(a), self.target(b)
        config = self.write_config([ta, tb])

        run = self.run_once(config)

        self.assertExit(run, 0)
        for tenant, target, users, unprotected in ((a, ta, 3, 1), (b, tb, 2, 0)):
            entries = self.run_events(run, target["name"])
            baseline = self.one_event(entries, "baseline-recorded")
            self.assertFields(baseline, CBM365_CUSTOMER_ID=tenant["customer_id"],
                              CBM365_TENANT_ID=tenant["tenant_id"], CBM365_USERS=users,
                              CBM365_UNPROTECTED=unprotected, PRIORITY=PRIORITY_INFO,
                              SYSLOG_IDENTIFIER="cbm365-watchd")
            self.assertRegex(baseline.get("MESSAGE_ID", ""), r"^[0-9a-f]{32}$")
            self.assertNoUserEvents(entries)
            self.assertTrue(self.snapshot_path(tenant).is_file(), f"{self.snapshot_path(tenant)} missing")

        summary = self.summary_of(run)
        self.assertIsNotNone(summary, "no poll-summary entry")
        self.assertFields(summary, CBM365_TARGETS=2, CBM365_TARGETS_POLLED=2, CBM365_TARGETS_FAILED=0,
                          CBM365_USERS=5, CBM365_UNPROTECTED=1, CBM365_CHANGES=0, PRIORITY=PRIORITY_INFO)

    def test_environment_overrides(self):
        # $STATE_DIRECTORY wins over state_directory, and the secret comes from
        # $CREDENTIALS_DIRECTORY/client-secret; a target without a name goes by
        # its tenant id.
        a = self.tenant("env", [user("e1", "ann@env.example", "Ann", mailbox=True, onedrive=True)])
        self.start_mock([a])
        state = self.dir / "state-from-env"
        state.mkdir(mode=0o700)
        creds = self.dir / "credentials"
        creds.mkdir(mode=0o700)
        self.write_secret(creds / "client-secret", self.secret)
        self.secret_file.unlink()
        config = self.write_config([self.target(a, name=None)])

        run = self.run_once(config, env={"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(creds)})

        self.assertExit(run, 0)
        entries = self.run_events(run, a["tenant_id"])
        self.one_event(entries, "baseline-recorded", CBM365_USERS=1)
        self.assertTrue(self.snapshot_path(a, state).is_file(), "snapshot not in $STATE_DIRECTORY")
        self.assertFalse(self.snapshot_path(a).exists(), "snapshot written to state_directory")


class ChangesTest(harness.IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.before = [
            user("u1", "alice@c.example", "Alice", mailbox=True, onedrive=True),
            user("u2", "bob@c.example", "Bob", mailbox=False, onedrive=True),
            user("u3", "carol@c.example", "Carol", mailbox=True, onedrive=True),
            user("u4", "dave@c.example", "Dave", mailbox=True, onedrive=True),
            user("u5", "erin@c.example", "Erin", mailbox=True, onedrive=True),
            user("u6", "frank@c.example", "Frank", mailbox=True, onedrive=True),
        ]
        self.ten = self.tenant("c", [dict(u) for u in self.before])
        self.start_mock([self.ten])
        self.tgt = self.target(self.ten)
        self.config = self.write_config([self.tgt])
        first = self.run_once(self.config)
        self.assertExit(first, 0)
        self.one_event(self.run_events(first, self.tgt["name"]), "baseline-recorded", CBM365_USERS=6)

    def test_second_run_logs_each_change(self):
        after = [
            user("u1", "alice@c.example", "Alice", mailbox=False, onedrive=True),  # mailbox lost
            user("u2", "bob@c.example", "Bob", mailbox=True, onedrive=True),       # mailbox gained
            user("u3", "carol@c.example", "Carol", mailbox=True),                  # onedrive gone
            # u4 removed
            user("u5", "erin.new@c.example", "Erin New", mailbox=True, onedrive=True),  # renamed
            user("u6", "frank@c.example", "Frank", mailbox=True, onedrive=True),
            user("u7", "grace@c.example", "Grace", mailbox=False, onedrive=True),  # new hire
        ]
        self.mock.set_users(self.ten, after)
        snapshot_before = self.snapshot_path(self.ten).read_bytes()

        run = self.run_once(self.config)

        self.assertExit(run, 0)
        entries = self.run_events(run, self.tgt["name"])
        ids = {"CBM365_CUSTOMER_ID": self.ten["customer_id"], "CBM365_TENANT_ID": self.ten["tenant_id"]}

        lost = self.one_event(entries, "protection-lost", CBM365_USER_ID="u1")
        self.assertFields(lost, CBM365_USER_EMAIL="alice@c.example", CBM365_USER_NAME="Alice",
                          CBM365_MODULE="mailbox", CBM365_MODULE_CODE=0, CBM365_PREVIOUS="protected",
                          CBM365_CURRENT="unprotected", PRIORITY=PRIORITY_WARNING, **ids)

        gained = self.one_event(entries, "protection-gained", CBM365_USER_ID="u2")
        self.assertFields(gained, CBM365_USER_EMAIL="bob@c.example", CBM365_MODULE="mailbox",
                          CBM365_MODULE_CODE=0, CBM365_PREVIOUS="unprotected", CBM365_CURRENT="protected",
                          PRIORITY=PRIORITY_NOTICE, **ids)

        onedrive_absent = self.one_event(entries, "protection-lost", CBM365_USER_ID="u3")
        self.assertFields(onedrive_absent, CBM365_MODULE="onedrive", CBM365_MODULE_CODE=2, CBM365_PREVIOUS="protected",
                          CBM365_CURRENT="absent", PRIORITY=PRIORITY_WARNING)

        removed = self.one_event(entries, "user-removed", CBM365_USER_ID="u4")
        self.assertFields(removed, CBM365_USER_EMAIL="dave@c.example", CBM365_USER_NAME="Dave",
                          PRIORITY=PRIORITY_NOTICE, **ids)

        changed = self.one_event(entries, "user-changed", CBM365_USER_ID="u5")
        self.assertFields(changed, CBM365_USER_EMAIL="erin.new@c.example", CBM365_USER_NAME="Erin New",
                          CBM365_PREVIOUS_USER_EMAIL="erin@c.example", CBM365_PREVIOUS_USER_NAME="Erin",
                          PRIORITY=PRIORITY_INFO, **ids)

        added_mailbox = self.one_event(entries, "user-added", CBM365_USER_ID="u7", CBM365_MODULE="mailbox")
        self.assertFields(added_mailbox, CBM365_USER_EMAIL="grace@c.example", CBM365_USER_NAME="Grace",
                          CBM365_MODULE_CODE=0, CBM365_PREVIOUS="absent", CBM365_CURRENT="unprotected",
                          PRIORITY=PRIORITY_WARNING, **ids)
        added_onedrive = self.one_event(entries, "user-added", CBM365_USER_ID="u7", CBM365_MODULE="onedrive")
        self.assertFields(added_onedrive, CBM365_MODULE_CODE=2, CBM365_PREVIOUS="absent",
                          CBM365_CURRENT="protected", PRIORITY=PRIORITY_NOTICE)

        user_events = harness.events_of(entries, *harness.USER_EVENTS)
        self.assertEqual(len(user_events), 7, f"expected exactly 7 user events:\n{harness.describe(user_events)}")
        self.assertEqual(harness.events_of(entries, "baseline-recorded", "poll-failed"), [])

        # One MESSAGE_ID per kind, and no two kinds share one.
        ids_by_kind = {}
        for e in user_events:
            ids_by_kind.setdefault(e["CBM365_EVENT"], set()).add(e.get("MESSAGE_ID"))
        for kind, message_ids in ids_by_kind.items():
            self.assertEqual(len(message_ids), 1, f"{kind} has MESSAGE_IDs {message_ids}")
        all_ids = [next(iter(s)) for s in ids_by_kind.values()]
        self.assertEqual(len(set(all_ids)), len(all_ids), f"kinds share a MESSAGE_ID: {ids_by_kind}")

        summary = self.summary_of(run)
        self.assertIsNotNone(summary, "no poll-summary entry")
        self.assertFields(summary, CBM365_TARGETS=1, CBM365_TARGETS_POLLED=1, CBM365_TARGETS_FAILED=0,
                          CBM365_USERS=6, CBM365_UNPROTECTED=2, CBM365_CHANGES=7)

        self.assertNotEqual(self.snapshot_path(self.ten).read_bytes(), snapshot_before,
                            "snapshot not updated")

    def test_third_run_without_change_is_quiet(self):
        run = self.run_once(self.config)
        self.assertExit(run, 0)
        entries = self.run_events(run, self.tgt["name"])
        self.assertNoUserEvents(entries)
        self.assertEqual(harness.events_of(entries, "baseline-recorded"), [])
        summary = self.summary_of(run)
        self.assertIsNotNone(summary, "no poll-summary entry")
        self.assertFields(summary, CBM365_USERS=6, CBM365_UNPROTECTED=1, CBM365_CHANGES=0)

    def test_name_arrives_verbatim(self):
        name = '%s%n%x "Zoë" \\ {}'
        email = "o'brien+%n@c.example"
        self.mock.set_users(self.ten, self.before + [user("u8", email, name, mailbox=True, onedrive=True)])

        run = self.run_once(self.config)

        self.assertExit(run, 0)
        entries = self.run_events(run, self.tgt["name"])
        added = self.one_event(entries, "user-added", CBM365_USER_ID="u8", CBM365_MODULE="mailbox")
        self.assertFields(added, CBM365_USER_NAME=name, CBM365_USER_EMAIL=email)

    def test_unknown_module_code(self):
        self.mock.set_users(self.ten, self.before + [user("u9", "ivan@c.example", "Ivan",
                                                            modules=[(7, False)])])

        run = self.run_once(self.config)

        self.assertExit(run, 0)
        entries = self.run_events(run, self.tgt["name"])
        added = self.one_event(entries, "user-added", CBM365_USER_ID="u9")
        self.assertFields(added, CBM365_MODULE="module-7", CBM365_MODULE_CODE=7,
                          CBM365_CURRENT="unprotected", PRIORITY=PRIORITY_WARNING)


class ApiVariantsTest(harness.IntegrationTestCase):

    def test_pascal_case_tenant(self):
        users = [user("p1", "pat@p.example", "Pat", mailbox=True, onedrive=True),
                 user("p2", "quinn@p.example", "Quinn", mailbox=True, onedrive=False)]
        ten = self.tenant("pascal", users, field_case="pascal")
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt])

        first = self.run_once(config)
        self.assertExit(first, 0)
        baseline = self.one_event(self.run_events(first, tgt["name"]), "baseline-recorded")
        self.assertFields(baseline, CBM365_USERS=2, CBM365_UNPROTECTED=1)

        self.mock.set_users(ten, [user("p1", "pat@p.example", "Pat", mailbox=False, onedrive=True), users[1]])
        second = self.run_once(config)
        self.assertExit(second, 0)
        lost = self.one_event(self.run_events(second, tgt["name"]), "protection-lost")
        self.assertFields(lost, CBM365_USER_ID="p1", CBM365_USER_EMAIL="pat@p.example", CBM365_MODULE="mailbox")

    def test_user_emails_sent_as_array(self):
        users = [user("m1", "ceo@m.example", "CEO", mailbox=True, onedrive=True),
                 user("m2", "cfo@m.example", "CFO", mailbox=True, onedrive=True),
                 user("m3", "intern@m.example", "Intern", mailbox=False, onedrive=False)]
        some = self.tenant("some", users)
        every = self.tenant("every", [dict(u) for u in users])
        self.start_mock([some, every])
        emails = ["ceo@m.example", "cfo@m.example"]
        config = self.write_config([self.target(some, user_emails=emails), self.target(every)])

        run = self.run_once(config)

        self.assertExit(run, 0)
        some_requests = self.mock.users_requests(some)
        self.assertTrue(some_requests, "no users/batch request for the user_emails target")
        for r in some_requests:
            self.assertEqual(harness.request_body_json(r), {"userEmails": emails})
        every_requests = self.mock.users_requests(every)
        self.assertTrue(every_requests, "no users/batch request for the plain target")
        for r in every_requests:
            self.assertEqual(harness.request_body_json(r), {})

    def test_every_page_requested(self):
        users = [user(f"g{i:02d}", f"g{i}@g.example", f"G {i}", mailbox=True, onedrive=i % 3 != 0)
                 for i in range(1, 8)]
        ten = self.tenant("pages", users)
        self.start_mock([ten])
        tgt = self.target(ten)
        config = self.write_config([tgt], page_size=3)

        run = self.run_once(config)

        self.assertExit(run, 0)
        baseline = self.one_event(self.run_events(run, tgt["name"]), "baseline-recorded")
        self.assertFields(baseline, CBM365_USERS=7, CBM365_UNPROTECTED=2)
        pages = sorted({int(harness.query_value(r, "pageIndex")) for r in self.mock.users_requests(ten)})
        self.assertEqual(pages[:3], [1, 2, 3])
        for r in self.mock.users_requests(ten):
            self.assertEqual(str(harness.query_value(r, "pageSize")), "3")


if __name__ == "__main__":
    harness.main()
