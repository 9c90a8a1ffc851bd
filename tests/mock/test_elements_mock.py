#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Self-test of elements_mock.py: starts the mock as a subprocess on a free
loopback port and checks the vendor endpoints, faults and control endpoints
over real HTTP. Every request has a 10 s timeout and every process a bounded
start and stop.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

MOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "elements_mock.py")
HTTP_TIMEOUT_SEC = 10
START_TIMEOUT_SEC = 10
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SCOPE = "elements.cbprotected.read.all"
CLIENT_ID = "0f4c2a8e-5d1b-4e7a-9c3f-8b2d6e1a7c90"
CLIENT_SECRET = "mock-secret-Vt8qZr2LwX"
OTHER_SCOPE_CLIENT_ID = "6a9e3b1c-2f7d-4c8a-b5e0-1d4f7a2c9e36"
CUSTOMER = "3c1f9a2e-7b4d-4e8a-9f1c-2d5b8e7a6c10"
TENANT = "8e2d4c6a-1b3f-4a5e-8c7d-9f0a1b2c3d4e"
PASCAL_TENANT = "5b7c9d1e-3f2a-4b6c-8d0e-2a4c6e8f0b1d"
USERS_PATH = ("/partner/external/v3/general/customers/{}/tenants/{}"
              "/cloud-backup-m365/users/batch")


def make_user(n, mailbox=True, onedrive=False):
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"user{n}")),
            "email": f"user{n}@contoso.example",
            "displayName": f"User {n}",
            "moduleStatus": [{"module": 0, "isProtected": mailbox},
                             {"module": 2, "isProtected": onedrive}]}


def base_scenario(**extra):
    scenario = {
        "clients": {
            CLIENT_ID: {"secret": CLIENT_SECRET, "scopes": [SCOPE]},
            OTHER_SCOPE_CLIENT_ID: {"secret": CLIENT_SECRET,
                                    "scopes": ["elements.customers.read.all"]},
        },
        "token_lifetime": 3600,
        "tenants": [
            {"customer_id": CUSTOMER, "tenant_id": TENANT, "field_case": "camel",
             "users": [make_user(n, mailbox=n % 2 == 1) for n in range(1, 6)]},
            {"customer_id": CUSTOMER, "tenant_id": PASCAL_TENANT, "field_case": "pascal",
             "users": [make_user(9, onedrive=True)]},
        ],
        "faults": [],
    }
    scenario.update(extra)
    return scenario


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class MockProcess:
    """The mock running as a subprocess, with its output in files."""

    def __init__(self, scenario, *args, tls=None):
        self.dir = tempfile.mkdtemp(prefix="elements-mock-test-")
        self.scenario_path = os.path.join(self.dir, "scenario.json")
        self.write_scenario(scenario)
        port_file = os.path.join(self.dir, "port")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.tls = tls
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                    [sys.executable, MOCK, "--scenario", self.scenario_path, "--port", "0",
                     "--port-file", port_file, *args],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock did not start: {self.stderr()}")
            time.sleep(0.02)
        with open(port_file, encoding="ascii") as f:
            self.port = int(f.read())

    def write_scenario(self, scenario):
        with open(self.scenario_path, "w", encoding="utf-8") as f:
            json.dump(scenario, f)

    def connection(self):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_SEC,
                                               context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_SEC)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            if own:
                conn.close()

    def control(self, method, path, body=None):
        reply = self.request(method, "/_mock/" + path, body)
        if reply.status != 200:
            raise AssertionError(f"{method} /_mock/{path}: {reply.status} {reply.body!r}")
        return reply.json()

    def token(self, client_id=CLIENT_ID, secret=CLIENT_SECRET, scope=SCOPE):
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": secret, "scope": scope}
        reply = self.token_request(form)
        if reply.status != 200:
            raise AssertionError(f"token request failed: {reply.status} {reply.body!r}")
        return reply.json()["access_token"]

    def token_request(self, form, content_type="application/x-www-form-urlencoded",
                      headers=None):
        body = form if isinstance(form, str) else urllib.parse.urlencode(form)
        return self.request("POST", "/connect/token", body,
                            dict({"Content-Type": content_type}, **(headers or {})))

    def users(self, token, body=None, query="", customer=CUSTOMER, tenant=TENANT,
              content_type="application/json", conn=None):
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        path = USERS_PATH.format(customer, tenant) + (f"?{query}" if query else "")
        return self.request("POST", path, {} if body is None else body, headers, conn)

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        """Send SIGTERM and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SharedMockTest(unittest.TestCase):
    """Tests against one mock process; each test starts from base_scenario()."""

    @classmethod
    def setUpClass(cls):
        cls.mock = MockProcess(base_scenario(), "--quiet")

    @classmethod
    def tearDownClass(cls):
        cls.mock.cleanup()

    def setUp(self):
        self.mock.control("PUT", "scenario", base_scenario())
        self.token = self.mock.token()
        self.mock.control("DELETE", "requests")
        self.mock.control("DELETE", "stats")

    def add_fault(self, **fault):
        self.mock.control("POST", "faults", fault)

    def assert_error(self, reply, status, error):
        self.assertEqual(reply.status, status, reply.body)
        self.assertEqual(reply.json()["error"], error)


class TokenTest(SharedMockTest):
    def test_token_success(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET, "scope": SCOPE})
        self.assertEqual(reply.status, 200)
        body = reply.json()
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3600)
        self.assertEqual(body["scope"], SCOPE)
        self.assertGreaterEqual(len(body["access_token"]), 32)
        self.assertEqual(reply.headers["Cache-Control"], "no-store")

    def test_token_fresh_each_time(self):
        self.assertNotEqual(self.mock.token(), self.mock.token())

    def test_token_without_scope_grants_all(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET})
        self.assertEqual(reply.json()["scope"], SCOPE)

    def test_token_basic_auth(self):
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        reply = self.mock.token_request({"grant_type": "client_credentials", "scope": SCOPE},
                                        headers={"Authorization": f"Basic {basic}"})
        self.assertEqual(reply.status, 200, reply.body)

    def test_token_wrong_secret(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": "wrong", "scope": SCOPE})
        self.assert_error(reply, 400, "invalid_client")
        self.assertIn("error_description", reply.json())

    def test_token_unknown_client(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": "nobody",
                                         "client_secret": CLIENT_SECRET, "scope": SCOPE})
        self.assert_error(reply, 400, "invalid_client")

    def test_token_missing_secret(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "scope": SCOPE})
        self.assert_error(reply, 400, "invalid_client")

    def test_token_invalid_scope(self):
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET,
                                         "scope": "elements.customers.read.all"})
        self.assert_error(reply, 400, "invalid_scope")

    def test_token_unsupported_grant(self):
        reply = self.mock.token_request({"grant_type": "password", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET, "scope": SCOPE})
        self.assert_error(reply, 400, "unsupported_grant_type")

    def test_token_missing_grant(self):
        reply = self.mock.token_request({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        self.assert_error(reply, 400, "invalid_request")

    def test_token_wrong_content_type(self):
        reply = self.mock.token_request(json.dumps({"grant_type": "client_credentials"}),
                                        content_type="application/json")
        self.assert_error(reply, 400, "invalid_request")

    def test_token_repeated_parameter(self):
        body = f"grant_type=client_credentials&client_id={CLIENT_ID}&client_id={CLIENT_ID}" \
               f"&client_secret={CLIENT_SECRET}"
        reply = self.mock.token_request(body)
        self.assert_error(reply, 400, "invalid_request")

    def test_token_get_rejected(self):
        reply = self.mock.request("GET", "/connect/token")
        self.assertEqual(reply.status, 405)


class UsersTest(SharedMockTest):
    def test_pages_of_two(self):
        ids = []
        for page, expected in ((1, 2), (2, 2), (3, 1)):
            reply = self.mock.users(self.token, query=f"pageIndex={page}&pageSize=2")
            self.assertEqual(reply.status, 200)
            body = reply.json()
            self.assertEqual(len(body["data"]), expected)
            self.assertEqual(body["metadata"], {"pageIndex": page, "pageSize": 2, "totalCount": 5})
            ids += [u["id"] for u in body["data"]]
        self.assertEqual(ids, [make_user(n)["id"] for n in range(1, 6)])

    def test_page_past_end_empty(self):
        body = self.mock.users(self.token, query="pageIndex=4&pageSize=2").json()
        self.assertEqual(body["data"], [])
        self.assertEqual(body["metadata"]["totalCount"], 5)

    def test_user_fields(self):
        user = self.mock.users(self.token).json()["data"][1]
        self.assertEqual(user, make_user(2, mailbox=False))

    def test_default_paging(self):
        body = self.mock.users(self.token).json()
        self.assertEqual(body["metadata"], {"pageIndex": 1, "pageSize": 50, "totalCount": 5})

    def test_content_type_json(self):
        reply = self.mock.users(self.token)
        self.assertEqual(reply.headers["Content-Type"], "application/json; charset=utf-8")

    def test_invalid_paging(self):
        for query in ("pageSize=101", "pageSize=0", "pageSize=abc", "pageSize=1.5", "pageSize=",
                      "pageIndex=0", "pageIndex=-1", "pageIndex=x", "pageSize=2&pageSize=3",
                      "pageIndex=99999999999"):
            with self.subTest(query=query):
                reply = self.mock.users(self.token, query=query)
                self.assertEqual(reply.status, 400)

    def test_page_size_max_allowed(self):
        self.assertEqual(self.mock.users(self.token, query="pageSize=100").status, 200)

    def test_missing_bearer(self):
        reply = self.mock.users(None)
        self.assertEqual(reply.status, 401)
        self.assertEqual(reply.headers["WWW-Authenticate"], 'Bearer error="invalid_token"')

    def test_unknown_token(self):
        reply = self.mock.users("not-a-token")
        self.assertEqual(reply.status, 401)
        self.assertEqual(reply.headers["WWW-Authenticate"], 'Bearer error="invalid_token"')

    def test_expired_token(self):
        self.mock.control("PUT", "scenario", base_scenario(token_lifetime=1))
        token = self.mock.token()
        self.assertEqual(self.mock.users(token).status, 200)
        time.sleep(1.2)
        reply = self.mock.users(token)
        self.assertEqual(reply.status, 401)
        self.assertEqual(reply.headers["WWW-Authenticate"], 'Bearer error="invalid_token"')

    def test_revoked_tokens(self):
        revoked = self.mock.control("POST", "expire-tokens")
        self.assertGreaterEqual(revoked["revoked"], 1)
        self.assertEqual(self.mock.users(self.token).status, 401)
        self.assertEqual(self.mock.users(self.mock.token()).status, 200)

    def test_missing_scope(self):
        token = self.mock.token(OTHER_SCOPE_CLIENT_ID, scope="elements.customers.read.all")
        reply = self.mock.users(token)
        self.assert_error(reply, 403, "insufficient_scope")

    def test_wrong_content_type(self):
        reply = self.mock.users(self.token, content_type="text/plain")
        self.assertEqual(reply.status, 400)

    def test_body_not_object(self):
        for body in ("[]", "\"x\"", "{", "", "null"):
            with self.subTest(body=body):
                reply = self.mock.request("POST", USERS_PATH.format(CUSTOMER, TENANT), body,
                                          {"Authorization": f"Bearer {self.token}",
                                           "Content-Type": "application/json"})
                self.assertEqual(reply.status, 400)

    def test_user_emails_not_strings(self):
        for emails in ("user1@contoso.example", [1], None, {"a": "b"}):
            with self.subTest(emails=emails):
                reply = self.mock.users(self.token, {"userEmails": emails})
                self.assertEqual(reply.status, 400)

    def test_unknown_tenant(self):
        reply = self.mock.users(self.token, tenant="00000000-0000-0000-0000-000000000000")
        self.assert_error(reply, 404, "not_found")

    def test_unknown_customer(self):
        reply = self.mock.users(self.token, customer="00000000-0000-0000-0000-000000000000")
        self.assert_error(reply, 404, "not_found")

    def test_unknown_path(self):
        reply = self.mock.request("GET", "/partner/external/v3/general/customers")
        self.assertEqual(reply.status, 404)

    def test_ids_ignore_case(self):
        reply = self.mock.users(self.token, customer=CUSTOMER.upper(), tenant=TENANT.upper())
        self.assertEqual(reply.status, 200)

    def test_user_emails_filter(self):
        body = self.mock.users(self.token, {"userEmails": ["USER4@Contoso.Example",
                                                          "nobody@contoso.example"]}).json()
        self.assertEqual([u["email"] for u in body["data"]], ["user4@contoso.example"])
        self.assertEqual(body["metadata"]["totalCount"], 1)

    def test_old_email_field_ignored(self):
        body = self.mock.users(self.token, {"email": "user4@contoso.example"}).json()
        self.assertEqual(body["metadata"]["totalCount"], 5)

    def test_pascal_case(self):
        body = self.mock.users(self.token, tenant=PASCAL_TENANT).json()
        self.assertEqual(body["data"][0]["moduleStatus"],
                         [{"Module": 0, "IsProtected": True}, {"Module": 2, "IsProtected": True}])


class FaultTest(SharedMockTest):
    def test_status_fault(self):
        self.add_fault(endpoint="users", action="status", status=503,
                       headers={"Retry-After": "1"}, body='{"message":"busy"}')
        reply = self.mock.users(self.token)
        self.assertEqual(reply.status, 503)
        self.assertEqual(reply.headers["Retry-After"], "1")
        self.assertEqual(reply.body, b'{"message":"busy"}')
        self.assertEqual(self.mock.users(self.token).status, 200)

    def test_status_default_body(self):
        self.add_fault(action="status", status=500)
        reply = self.mock.users(self.token)
        self.assert_error(reply, 500, "injected_fault")

    def test_fault_times(self):
        self.add_fault(action="status", status=429, times=2)
        statuses = [self.mock.users(self.token).status for _ in range(3)]
        self.assertEqual(statuses, [429, 429, 200])

    def test_fault_forever(self):
        self.add_fault(action="status", status=500, times=0)
        statuses = [self.mock.users(self.token).status for _ in range(4)]
        self.assertEqual(statuses, [500] * 4)

    def test_fault_page_selector(self):
        self.add_fault(action="status", status=500, page=2)
        statuses = [self.mock.users(self.token, query=f"pageIndex={p}&pageSize=2").status
                    for p in (1, 2, 3, 2)]
        self.assertEqual(statuses, [200, 500, 200, 200])

    def test_fault_tenant_selector(self):
        self.add_fault(action="status", status=500, customer_id=CUSTOMER, tenant_id=PASCAL_TENANT)
        self.assertEqual(self.mock.users(self.token).status, 200)
        self.assertEqual(self.mock.users(self.token, tenant=PASCAL_TENANT).status, 500)

    def test_first_matching_fault_wins(self):
        self.mock.control("POST", "faults", [{"action": "status", "status": 502},
                                             {"action": "status", "status": 503}])
        statuses = [self.mock.users(self.token).status for _ in range(3)]
        self.assertEqual(statuses, [502, 503, 200])

    def test_malformed(self):
        self.add_fault(action="malformed")
        reply = self.mock.users(self.token)
        self.assertEqual(reply.status, 200)
        with self.assertRaises(ValueError):
            json.loads(reply.body)

    def test_truncate(self):
        self.add_fault(action="truncate")
        conn = self.mock.connection()
        try:
            conn.request("POST", USERS_PATH.format(CUSTOMER, TENANT), body="{}",
                         headers={"Authorization": f"Bearer {self.token}",
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            with self.assertRaises(http.client.IncompleteRead):
                response.read()
        finally:
            conn.close()

    def test_delay(self):
        self.add_fault(action="delay", delay_ms=400)
        started = time.monotonic()
        reply = self.mock.users(self.token)
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        self.assertEqual(reply.status, 200)

    def test_expire_token(self):
        self.add_fault(action="expire-token")
        reply = self.mock.users(self.token)
        self.assertEqual(reply.status, 401)
        self.assertEqual(reply.headers["WWW-Authenticate"], 'Bearer error="invalid_token"')
        self.assertEqual(self.mock.users(self.token).status, 401)
        self.assertEqual(self.mock.users(self.mock.token()).status, 200)

    def test_shift_total(self):
        self.add_fault(action="shift-total", page=2)
        first = self.mock.users(self.token, query="pageIndex=1&pageSize=2").json()
        second = self.mock.users(self.token, query="pageIndex=2&pageSize=2").json()
        self.assertEqual(first["metadata"]["totalCount"], 5)
        self.assertEqual(second["metadata"]["totalCount"], 6)
        self.assertEqual(len(second["data"]), 2)

    def test_duplicate_user(self):
        self.add_fault(action="duplicate-user", page=2)
        first = self.mock.users(self.token, query="pageIndex=1&pageSize=2").json()
        second = self.mock.users(self.token, query="pageIndex=2&pageSize=2").json()
        self.assertEqual(second["data"][0], first["data"][-1])
        self.assertEqual(second["data"][1]["id"], make_user(4)["id"])

    def test_drop_connection(self):
        self.add_fault(action="drop-connection")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.mock.users(self.token)
        self.assertEqual(self.mock.users(self.token).status, 200)

    def test_token_endpoint_fault(self):
        self.add_fault(endpoint="token", action="status", status=503, headers={"Retry-After": "2"})
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET, "scope": SCOPE})
        self.assertEqual(reply.status, 503)
        self.assertEqual(reply.headers["Retry-After"], "2")
        self.assertEqual(self.mock.users(self.token).status, 200)

    def test_token_malformed(self):
        self.add_fault(endpoint="token", action="malformed")
        reply = self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET, "scope": SCOPE})
        with self.assertRaises(ValueError):
            json.loads(reply.body)

    def test_invalid_fault_rejected(self):
        for fault in ({"action": "explode"}, {"action": "status", "status": "500"},
                      {"endpoint": "token", "action": "shift-total"}, {"action": "status", "pages": 1},
                      {"endpoint": "token", "action": "status", "page": 1}):
            with self.subTest(fault=fault):
                reply = self.mock.request("POST", "/_mock/faults", fault)
                self.assert_error(reply, 400, "invalid_scenario")

    def test_faults_listed_and_cleared(self):
        self.add_fault(action="status", status=500, times=2)
        self.mock.users(self.token)
        faults = self.mock.control("GET", "faults")
        self.assertEqual(faults[0]["remaining"], 1)
        self.mock.control("DELETE", "faults")
        self.assertEqual(self.mock.control("GET", "faults"), [])
        self.assertEqual(self.mock.users(self.token).status, 200)

    def test_fault_in_scenario(self):
        self.mock.control("PUT", "scenario", base_scenario(
                faults=[{"endpoint": "users", "action": "status", "status": 500}]))
        self.assertEqual(self.mock.users(self.mock.token()).status, 500)


class ControlTest(SharedMockTest):
    def test_scenario_round_trip(self):
        scenario = self.mock.control("GET", "scenario")
        self.assertEqual(scenario["tenants"], base_scenario()["tenants"])
        self.assertEqual(scenario["token_lifetime"], 3600)

    def test_invalid_scenario_kept_old(self):
        reply = self.mock.request("PUT", "/_mock/scenario", {"tenants": [{"tenant_id": "x"}]})
        self.assert_error(reply, 400, "invalid_scenario")
        self.assertEqual(self.mock.users(self.token).status, 200)

    def test_put_tenant_users(self):
        self.mock.users(self.token)  # fills the page cache
        self.mock.control("PUT", f"tenants/{CUSTOMER}/{TENANT}/users", [make_user(7)])
        body = self.mock.users(self.token).json()
        self.assertEqual([u["id"] for u in body["data"]], [make_user(7)["id"]])
        self.assertEqual(body["metadata"]["totalCount"], 1)

    def test_put_tenant_creates(self):
        self.mock.control("PUT", "tenants/new-customer/new-tenant/users", [make_user(8)])
        body = self.mock.users(self.token, customer="new-customer", tenant="new-tenant").json()
        self.assertEqual(body["data"], [make_user(8)])

    def test_put_tenant_keeps_case(self):
        self.mock.control("PUT", f"tenants/{CUSTOMER}/{PASCAL_TENANT}/users", [make_user(8)])
        body = self.mock.users(self.token, tenant=PASCAL_TENANT).json()
        self.assertIn("IsProtected", body["data"][0]["moduleStatus"][0])

    def test_put_tenant_rejects_object(self):
        reply = self.mock.request("PUT", f"/_mock/tenants/{CUSTOMER}/{TENANT}/users", {"id": "1"})
        self.assertEqual(reply.status, 400)

    def test_delete_tenant(self):
        self.mock.control("DELETE", f"tenants/{CUSTOMER}/{TENANT}")
        self.assertEqual(self.mock.users(self.token).status, 404)

    def test_list_tenants(self):
        tenants = self.mock.control("GET", "tenants")
        self.assertEqual([(t["tenant_id"], t["users"]) for t in tenants],
                         [(TENANT, 5), (PASCAL_TENANT, 1)])

    def test_requests_recorded(self):
        reply = self.mock.users(self.token, {"userEmails": ["user1@contoso.example"]},
                                query="pageIndex=1&pageSize=2")
        records = self.mock.control("GET", "requests")
        self.assertEqual(len(records), 1)
        record = records[0]
        self.assertEqual(record["method"], "POST")
        self.assertEqual(record["path"], USERS_PATH.format(CUSTOMER, TENANT))
        self.assertEqual(record["query"], {"pageIndex": "1", "pageSize": "2"})
        self.assertEqual(record["body"], {"userEmails": ["user1@contoso.example"]})
        self.assertEqual(record["status"], 200)
        self.assertEqual(record["request_id"], reply.headers["request-id"])
        self.assertIsInstance(record["time"], float)

    def test_requests_hide_secrets(self):
        self.mock.control("DELETE", "requests")
        token = self.mock.token()
        self.mock.users(token)
        dump = json.dumps(self.mock.control("GET", "requests"))
        self.assertNotIn(CLIENT_SECRET, dump)
        self.assertNotIn(token, dump)
        self.assertIn(CLIENT_ID, dump)

    def test_requests_cleared(self):
        self.mock.users(self.token)
        self.mock.control("DELETE", "requests")
        self.assertEqual(self.mock.control("GET", "requests"), [])

    def test_control_not_recorded(self):
        self.mock.control("GET", "stats")
        self.assertEqual(self.mock.control("GET", "requests"), [])

    def test_stats(self):
        self.mock.control("DELETE", "stats")
        self.mock.token()
        self.mock.users(self.token)
        self.mock.users(self.token)
        stats = self.mock.control("GET", "stats")
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["token_requests"], 1)
        self.assertEqual(stats["users_requests"], 2)
        self.assertEqual(stats["max_concurrent"], 1)
        self.assertGreaterEqual(stats["connections"], 3)

    def test_max_concurrent(self):
        self.add_fault(action="delay", delay_ms=500, times=0)
        self.mock.control("DELETE", "stats")
        threads = [threading.Thread(target=self.mock.users, args=(self.token,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HTTP_TIMEOUT_SEC)
        self.assertEqual(self.mock.control("GET", "stats")["max_concurrent"], 3)

    def test_keep_alive(self):
        before = self.mock.control("GET", "stats")["connections"]
        conn = self.mock.connection()
        try:
            first = self.mock.users(self.token, conn=conn)
            local = conn.sock.getsockname()
            second = self.mock.users(self.token, query="pageIndex=2&pageSize=2", conn=conn)
            self.assertEqual(conn.sock.getsockname(), local)
        finally:
            conn.close()
        self.assertEqual(first.status, 200)
        self.assertEqual(second.status, 200)
        # One for this connection and one for the stats request itself.
        self.assertEqual(self.mock.control("GET", "stats")["connections"], before + 2)

    def test_unknown_control(self):
        self.assertEqual(self.mock.request("GET", "/_mock/nothing").status, 404)
        self.assertEqual(self.mock.request("POST", "/_mock/scenario", {}).status, 405)

    def test_request_id_everywhere(self):
        replies = [
            self.mock.token_request({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                     "client_secret": CLIENT_SECRET}),
            self.mock.token_request({"grant_type": "bad"}),
            self.mock.users(self.token),
            self.mock.users(None),
            self.mock.users(self.token, query="pageSize=101"),
            self.mock.users(self.token, tenant="unknown"),
            self.mock.request("GET", USERS_PATH.format(CUSTOMER, TENANT)),
            self.mock.request("GET", "/nothing/here"),
            self.mock.request("OPTIONS", "/connect/token"),
            self.mock.request("GET", "/_mock/stats"),
            self.mock.request("GET", "/_mock/nothing"),
        ]
        self.add_fault(action="status", status=503)
        replies.append(self.mock.users(self.token))
        ids = [r.headers["request-id"] for r in replies]
        for request_id in ids:
            self.assertRegex(request_id, UUID4)
        self.assertEqual(len(set(ids)), len(ids))

    def test_error_bodies_json(self):
        for reply in (self.mock.users(None), self.mock.request("GET", "/nothing"),
                      self.mock.request("OPTIONS", "/connect/token")):
            with self.subTest(status=reply.status):
                self.assertIn("error", reply.json())


class ProcessTest(unittest.TestCase):
    """Tests that need a mock process of their own."""

    def start(self, scenario=None, *args, **kwargs):
        mock = MockProcess(scenario or base_scenario(), *args, **kwargs)
        self.addCleanup(mock.cleanup)
        return mock

    def test_listening_line(self):
        mock = self.start(None, "--quiet")
        self.assertEqual(mock.stdout(), f"listening on http://127.0.0.1:{mock.port}\n")

    def test_sigterm_exits_zero(self):
        mock = self.start(None, "--quiet")
        self.assertEqual(mock.stop(), 0)

    def test_sigint_exits_zero(self):
        mock = self.start(None, "--quiet")
        mock.proc.send_signal(signal.SIGINT)
        self.assertEqual(mock.proc.wait(10), 0)

    def test_sigterm_with_idle_connection(self):
        mock = self.start(None, "--quiet")
        conn = mock.connection()
        self.addCleanup(conn.close)
        mock.users(mock.token(), conn=conn)
        self.assertEqual(mock.stop(), 0)

    def test_delay_ms(self):
        mock = self.start(None, "--quiet", "--delay-ms", "300")
        token = mock.token()
        for _ in range(2):
            started = time.monotonic()
            self.assertEqual(mock.users(token).status, 200)
            self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_quiet_silences_requests(self):
        mock = self.start(None, "--quiet")
        mock.users(mock.token())
        mock.stop()
        self.assertEqual(mock.stderr(), "")

    def test_requests_logged(self):
        mock = self.start()
        mock.users(mock.token())
        mock.stop()
        self.assertIn("/cloud-backup-m365/users/batch", mock.stderr())

    def test_sighup_reload(self):
        mock = self.start(None, "--quiet")
        token = mock.token()
        mock.write_scenario(base_scenario(tenants=[{"customer_id": CUSTOMER, "tenant_id": TENANT,
                                                    "users": [make_user(42)]}]))
        mock.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        total = None
        while time.monotonic() < deadline and total != 1:
            total = mock.users(token).json()["metadata"]["totalCount"]
            time.sleep(0.05)
        self.assertEqual(total, 1)

    def test_sighup_bad_file_kept(self):
        mock = self.start(None, "--quiet")
        with open(mock.scenario_path, "w", encoding="utf-8") as f:
            f.write("{not json")
        mock.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "keeping" not in mock.stderr():
            time.sleep(0.05)
        self.assertIn("keeping the current scenario", mock.stderr())
        self.assertEqual(mock.users(mock.token()).json()["metadata"]["totalCount"], 5)

    def test_non_loopback_refused(self):
        result = subprocess.run([sys.executable, MOCK, "--host", "0.0.0.0"],
                                capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"loopback", result.stderr)

    def test_bad_scenario_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"tenants": 5}')
            f.flush()
            result = subprocess.run([sys.executable, MOCK, "--scenario", f.name],
                                    capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"tenants must be a JSON array", result.stderr)

    def test_generated_tenants(self):
        scenario = base_scenario(tenants=[], generate={
                "customers": 2, "tenants_per_customer": 2, "users_per_tenant": 150,
                "unprotected_every": 10})
        mock = self.start(scenario, "--quiet")
        tenants = mock.control("GET", "tenants")
        self.assertEqual(len(tenants), 4)
        namespace = uuid.UUID("6f1c1f0e-3f57-4b8e-9d0a-2c5e7a3b9d41")
        customer = str(uuid.uuid5(namespace, "customer:2"))
        tenant = str(uuid.uuid5(namespace, "tenant:2:1"))
        body = mock.users(mock.token(), query="pageIndex=2&pageSize=100",
                          customer=customer, tenant=tenant).json()
        self.assertEqual(body["metadata"]["totalCount"], 150)
        self.assertEqual(len(body["data"]), 50)
        self.assertEqual(body["data"][0]["email"], "user101@tenant2-1.example.com")
        unprotected = [u for u in body["data"] if not u["moduleStatus"][0]["isProtected"]]
        self.assertEqual(len(unprotected), 5)

    def test_example_scenarios_load(self):
        sys.path.insert(0, os.path.dirname(MOCK))
        sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
        import elements_mock
        folder = os.path.join(os.path.dirname(MOCK), "scenarios")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        self.assertIn("demo.json", names)
        for name in names:
            with self.subTest(scenario=name):
                scenario = elements_mock.load_scenario_file(os.path.join(folder, name))
                self.assertGreater(len(scenario.tenants), 0)

    def test_demo_scenario_shape(self):
        with open(os.path.join(os.path.dirname(MOCK), "scenarios", "demo.json"),
                  encoding="utf-8") as f:
            tenants = json.load(f)["tenants"]
        self.assertEqual(len({t["customer_id"] for t in tenants}), 2)
        self.assertEqual(len(tenants), 3)

    @unittest.skipUnless(shutil.which("openssl"), "openssl is not installed")
    def test_tls(self):
        workdir = tempfile.mkdtemp(prefix="elements-mock-tls-")
        self.addCleanup(shutil.rmtree, workdir, True)
        cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        context = ssl.create_default_context(cafile=cert)
        mock = self.start(None, "--quiet", "--tls-cert", cert, "--tls-key", key, tls=context)
        self.assertEqual(mock.stdout(), f"listening on https://127.0.0.1:{mock.port}\n")
        self.assertEqual(mock.users(mock.token()).status, 200)
        with socket.create_connection(("127.0.0.1", mock.port), timeout=HTTP_TIMEOUT_SEC) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            plain.recv(100)  # the mock ends the failed handshake without a reply
        self.assertEqual(mock.users(mock.token()).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
