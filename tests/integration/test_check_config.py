#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cbm365-watchd --check-config: exit 0 on a good file, 1 naming file:line:setting on a bad one."""

import re

import harness


class CheckConfigTest(harness.IntegrationTestCase):

    def check(self, config, env=None):
        # No --log-target: this is what an operator types, and the result must
        # reach their terminal.
        return harness.run_daemon(["--check-config", "-c", str(config)], env=env, timeout=15)

    def good_targets(self):
        return [{"name": f"contoso-{self.token}", "customer_id": f"cust-{self.token}", "tenant_id": "t1"},
                {"name": f"fabrikam-{self.token}", "customer_id": f"cust-{self.token}", "tenant_id": "t2",
                 "interval": 3600, "user_emails": ["ceo@fabrikam.example"]}]

    def write_text(self, text):
        path = self.dir / "cbm365-watchd.conf"
        path.write_text(text, encoding="utf-8")
        return path

    def good_text(self):
        return harness.config_text(base_url="http://127.0.0.1:9", client_id=self.client_id,
                                   secret_file=self.secret_file, state_directory=self.state_dir,
                                   targets=self.good_targets())

    def replace_line(self, text, pattern, new_line):
        """Replace the first line matching pattern; return the text and the line number."""
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if re.search(pattern, line):
                lines[i] = new_line
                return "\n".join(lines), i + 1
        self.fail(f"no line matches {pattern!r}")

    def insert_after(self, text, pattern, new_line):
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if re.search(pattern, line):
                lines.insert(i + 1, new_line)
                return "\n".join(lines), i + 2
        self.fail(f"no line matches {pattern!r}")

    def assertRejected(self, run, config, line, setting):
        self.assertExit(run, 1)
        output = run.output()
        self.assertIn(f"{config}:{line}", output, "the message names the file and the line")
        self.assertIn(setting, output, "the message names the setting")

    def test_good_file(self):
        config = self.write_text(self.good_text())
        run = self.check(config)
        self.assertExit(run, 0)
        self.assertIn(f"contoso-{self.token}", run.stdout)
        self.assertIn(f"fabrikam-{self.token}", run.stdout)
        self.assertIn("127.0.0.1", run.stdout)
        self.assertNotIn(self.secret, run.output())

    def test_secret_readable_by_others_warns(self):
        config = self.write_text(self.good_text())
        self.assertNotIn("readable by group or others", self.check(config).stderr)
        self.secret_file.chmod(0o644)
        run = self.check(config)
        self.assertExit(run, 0)
        self.assertIn(f"Client secret file {self.secret_file} is readable by group or others", run.stderr)
        self.assertNotIn(self.secret, run.output())

    def test_state_directory_not_a_directory(self):
        config = self.write_text(self.good_text())
        not_a_dir = self.dir / "state-file"
        not_a_dir.write_text("")
        run = self.check(config, env={"STATE_DIRECTORY": str(not_a_dir)})
        self.assertExit(run, 1)
        self.assertIn(f"State directory {not_a_dir} is not a directory", run.stderr)

    def test_config_writable_by_others_rejected(self):
        config = self.write_text(self.good_text())
        config.chmod(0o666)
        run = self.check(config)
        self.assertExit(run, 1)
        self.assertIn(str(config), run.stderr)

    def test_secret_from_credentials_directory(self):
        creds = self.dir / "credentials"
        creds.mkdir(mode=0o700)
        self.write_secret(creds / "client-secret", self.secret)
        self.secret_file.unlink()
        config = self.write_text(self.good_text())
        run = self.check(config, env={"CREDENTIALS_DIRECTORY": str(creds)})
        self.assertExit(run, 0)

    def test_page_size_out_of_range(self):
        text, line = self.replace_line(self.good_text(), r"^\s*timeout =", "  page_size = 500;")
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "api.page_size")

    def test_unknown_key(self):
        text, line = self.insert_after(self.good_text(), r"^\s*interval = 10;", "  jitter = 5;")
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "poll.jitter")

    def test_interval_below_minimum(self):
        text, line = self.replace_line(self.good_text(), r"^\s*interval = 10;", "  interval = 5;")
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "poll.interval")

    def test_wrong_type(self):
        text, line = self.replace_line(self.good_text(), r"^\s*timeout =", '  timeout = "60";')
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "api.timeout")

    def test_plain_http_to_remote_host(self):
        # The ".invalid" name never resolves; the check must not connect anyway.
        text, line = self.replace_line(self.good_text(), r"^\s*base_url =",
                                       '  base_url = "http://api.example.invalid";')
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "api.base_url")

    def test_missing_secret_file(self):
        self.secret_file.unlink()
        text = self.good_text()
        line = next(i + 1 for i, s in enumerate(text.split("\n")) if "client_secret_file" in s)
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "api.client_secret_file")

    def test_duplicate_target(self):
        targets = self.good_targets()
        targets.append(dict(targets[0], name=f"again-{self.token}"))
        text = harness.config_text(base_url="http://127.0.0.1:9", client_id=self.client_id,
                                   secret_file=self.secret_file, state_directory=self.state_dir,
                                   targets=targets)
        line = next(i + 1 for i, s in enumerate(text.split("\n")) if f"again-{self.token}" in s)
        config = self.write_text(text)
        self.assertRejected(self.check(config), config, line, "targets")

    def test_syntax_error(self):
        text, line = self.replace_line(self.good_text(), r"^\s*timeout =", "  timeout = = 3;")
        config = self.write_text(text)
        run = self.check(config)
        self.assertExit(run, 1)
        self.assertIn(f"{config}:{line}", run.output())

    def test_missing_file(self):
        config = self.dir / "does-not-exist.conf"
        run = self.check(config)
        self.assertExit(run, 1)
        self.assertIn(str(config), run.output())


if __name__ == "__main__":
    harness.main()
