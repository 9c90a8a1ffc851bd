#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Mock of AvePoint's Elements API for the tests, the demo and the benchmark.

It serves the identity service's client-credentials token endpoint
(POST /connect/token) and the Cloud Backup for Microsoft 365 users/batch
endpoint, with tenants, users and injected faults taken from a JSON scenario.
Tests steer it at run time through the control endpoints under /_mock/.
Python 3 standard library only. See README.md beside this file.
"""

import argparse
import base64
import collections
import functools
import hmac
import http
import http.server
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

SCOPE_USERS_READ = "elements.cbprotected.read.all"
DEFAULT_TOKEN_LIFETIME_SEC = 3600
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# The vendor's query parameters are .NET int32 values.
MAX_INT32 = 2**31 - 1

MAX_VENDOR_BODY_BYTES = 1 << 20
MAX_CONTROL_BODY_BYTES = 512 << 20
MAX_RECORDED_REQUESTS = 50000
MAX_RECORDED_RAW_BODY_CHARS = 4096
PAGE_CACHE_BUDGET_BYTES = 64 << 20
DEFAULT_FAULT_DELAY_MS = 1000
DEFAULT_IDLE_TIMEOUT_SEC = 60

USERS_PATH = re.compile(
    r"^/partner/external/v3/general/customers/([^/]+)/tenants/([^/]+)"
    r"/cloud-backup-m365/users/batch$")
TOKEN_PATH = "/connect/token"
INTEGER_TEXT = re.compile(r"^-?[0-9]+$")

FAULT_ACTIONS = ("status", "malformed", "truncate", "delay", "expire-token",
                 "shift-total", "duplicate-user", "drop-connection")
USERS_ONLY_FAULT_ACTIONS = ("expire-token", "shift-total", "duplicate-user")
FAULT_KEYS = ("endpoint", "customer_id", "tenant_id", "page", "times", "action",
              "status", "headers", "body", "delay_ms", "description")
SCENARIO_KEYS = ("clients", "token_lifetime", "tenants", "faults", "generate",
                 "description")
TENANT_KEYS = ("customer_id", "tenant_id", "field_case", "users", "name",
               "description")
GENERATE_KEYS = ("customers", "tenants_per_customer", "users_per_tenant",
                 "unprotected_every", "field_case")
FIELD_CASES = ("camel", "pascal")
MODULE_KEYS = {
        "camel": {"module": "module", "Module": "module",
                  "isProtected": "isProtected", "IsProtected": "isProtected"},
        "pascal": {"module": "Module", "Module": "Module",
                   "isProtected": "IsProtected", "IsProtected": "IsProtected"},
}
GENERATED_ID_NAMESPACE = uuid.UUID("6f1c1f0e-3f57-4b8e-9d0a-2c5e7a3b9d41")

# Form fields that carry a credential and so are never recorded.
SECRET_FORM_FIELDS = ("client_secret", "client_assertion")
# Request headers that carry a credential and so are never recorded.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")


class ScenarioError(ValueError):
    """An invalid scenario, tenant, user list or fault."""


class RequestError(Exception):
    """A request the mock rejects with an HTTP error reply."""

    def __init__(self, status, error, message, headers=None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


# --- scenario parsing --------------------------------------------------------

def _require(condition, message):
    if not condition:
        raise ScenarioError(message)


def _check_keys(obj, allowed, what):
    _require(isinstance(obj, dict), f"{what} must be a JSON object")
    unknown = sorted(set(obj) - set(allowed))
    _require(not unknown, f"{what} has unknown keys: {', '.join(unknown)}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _id_key(value):
    # Customer and tenant ids are GUIDs, which compare case-insensitively.
    return value.lower()


def _user_in_case(user, field_case):
    """Return USER with the keys of its moduleStatus entries in FIELD_CASE."""
    out = dict(user)
    modules = out.get("moduleStatus")
    if isinstance(modules, list):
        names = MODULE_KEYS[field_case]
        out["moduleStatus"] = [
                {names.get(k, k): v for k, v in m.items()} if isinstance(m, dict) else m
                for m in modules]
    return out


def _render_user(user, field_case):
    """Encode one user as compact JSON in the tenant's field case.

    Users are sent as given, so a test can send odd or missing fields. Only the
    keys of the moduleStatus entries are renamed to the tenant's case.
    """
    return json.dumps(_user_in_case(user, field_case), separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _email_key(user):
    email = user.get("email")
    return email.casefold() if isinstance(email, str) else None


def _generated_user_id(customer_index, tenant_index, n):
    """Return a GUID-shaped id, unique per (customer, tenant, user).

    A multiplicative hash scrambles the leading digits, so the users do not
    arrive sorted by id, and the trailing digits keep the id unique. It costs a
    fraction of uuid5, which matters for a million users.
    """
    h = (n * 0x9E3779B97F4A7C15 + tenant_index * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return (f"{h >> 32:08x}-{(h >> 16) & 0xffff:04x}-4{(h >> 4) & 0xfff:03x}-"
            f"{0x8000 | customer_index:04x}-{tenant_index:04x}{n:08x}")


def _generated_users(customer_index, tenant_index, spec, field_case):
    """Render the deterministic users of one generated tenant straight to JSON bytes.

    Formatting the bytes directly takes about 4 us a user against 22 us for
    building a dict and encoding it (measured with Python 3.11 on this project's
    2-core build machine). Every value here is plain ASCII without quotes.
    """
    module, protected = ("Module", "IsProtected") if field_case == "pascal" \
            else ("module", "isProtected")
    template = ('{"id":"%s","email":"%s","displayName":"User %d","moduleStatus":['
                f'{{"{module}":0,"{protected}":%s}},{{"{module}":2,"{protected}":true}}]}}')
    domain = f"tenant{customer_index}-{tenant_index}.example.com"
    unprotected_every = spec.get("unprotected_every", 0)
    users = []
    for n in range(1, spec["users_per_tenant"] + 1):
        email = f"user{n}@{domain}"
        mailbox = "false" if unprotected_every and n % unprotected_every == 0 else "true"
        data = template % (_generated_user_id(customer_index, tenant_index, n), email, n, mailbox)
        users.append((email, data.encode("ascii")))
    return users


class Tenant:
    """One tenant with its users kept as pre-rendered JSON, one bytes object a user.

    The users are rendered on the first request that needs them, so a large
    scenario starts fast and costs memory only for the tenants that are polled.
    """

    __slots__ = ("customer_id", "tenant_id", "field_case", "name", "generation",
                 "user_count", "_source", "_rendered")

    def __init__(self, customer_id, tenant_id, field_case, source, name=None, user_count=None):
        self.customer_id = customer_id
        self.tenant_id = tenant_id
        self.field_case = field_case
        self.name = name
        self.generation = 0
        self.user_count = len(source) if user_count is None else user_count
        # Until rendered: a list of user dicts, or a function that returns the
        # rendered list itself.
        self._source = source
        self._rendered = None  # list of (casefolded email or None, bytes)

    def rendered(self):
        if self._rendered is None:
            if callable(self._source):
                self._rendered = self._source()
            else:
                self._rendered = [(_email_key(u), _render_user(u, self.field_case))
                                  for u in self._source]
            self._source = None
        return self._rendered

    def users_as_json(self):
        return [_user_in_case(json.loads(data), "camel") for _, data in self.rendered()]

    def to_json(self):
        out = {"customer_id": self.customer_id, "tenant_id": self.tenant_id,
               "field_case": self.field_case, "users": self.users_as_json()}
        if self.name is not None:
            out["name"] = self.name
        return out


def parse_users(users, what):
    _require(isinstance(users, list), f"{what}: users must be a JSON array")
    for i, user in enumerate(users):
        _require(isinstance(user, dict), f"{what}: user {i} must be a JSON object")
    return users


def _parse_id(value, what):
    _require(isinstance(value, str) and value and "/" not in value,
             f"{what} must be a non-empty string without '/'")
    return value


def parse_tenant(obj, index):
    what = f"tenants[{index}]"
    _check_keys(obj, TENANT_KEYS, what)
    customer_id = _parse_id(obj.get("customer_id"), f"{what}.customer_id")
    tenant_id = _parse_id(obj.get("tenant_id"), f"{what}.tenant_id")
    field_case = obj.get("field_case", "camel")
    _require(field_case in FIELD_CASES, f"{what}.field_case must be camel or pascal")
    users = parse_users(obj.get("users", []), what)
    return Tenant(customer_id, tenant_id, field_case, users, obj.get("name"))


def _parse_positive(obj, key, what, default=None, minimum=1):
    value = obj.get(key, default)
    _require(_is_int(value) and value >= minimum,
             f"{what}.{key} must be an integer >= {minimum}")
    return value


def generate_tenants(spec):
    """Expand the "generate" section into deterministic tenants.

    Customer c (from 1) has the id uuid5(namespace, "customer:c"), its tenant t
    (from 1) the id uuid5(namespace, "tenant:c:t"), with the namespace above.
    """
    _check_keys(spec, GENERATE_KEYS, "generate")
    customers = _parse_positive(spec, "customers", "generate")
    per_customer = _parse_positive(spec, "tenants_per_customer", "generate")
    users = _parse_positive(spec, "users_per_tenant", "generate", minimum=0)
    # The generated user ids have 14 bits for the customer and 16 for the tenant.
    _require(customers <= 10000, "generate.customers must be at most 10000")
    _require(per_customer <= 10000, "generate.tenants_per_customer must be at most 10000")
    _require(users <= 1000000, "generate.users_per_tenant must be at most 1000000")
    _parse_positive(spec, "unprotected_every", "generate", default=0, minimum=0)
    field_case = spec.get("field_case", "camel")
    _require(field_case in FIELD_CASES, "generate.field_case must be camel or pascal")
    tenants = []
    for c in range(1, customers + 1):
        customer_id = str(uuid.uuid5(GENERATED_ID_NAMESPACE, f"customer:{c}"))
        for t in range(1, per_customer + 1):
            tenant_id = str(uuid.uuid5(GENERATED_ID_NAMESPACE, f"tenant:{c}:{t}"))
            render = functools.partial(_generated_users, c, t, spec, field_case)
            tenants.append(Tenant(customer_id, tenant_id, field_case, render,
                                  name=f"Generated tenant {c}-{t}", user_count=users))
    return tenants


def parse_clients(obj):
    _require(isinstance(obj, dict), "clients must be a JSON object")
    clients = {}
    for client_id, client in obj.items():
        what = f"clients[{client_id!r}]"
        _check_keys(client, ("secret", "scopes", "description"), what)
        _require(isinstance(client.get("secret"), str) and client["secret"],
                 f"{what}.secret must be a non-empty string")
        scopes = client.get("scopes", [SCOPE_USERS_READ])
        _require(isinstance(scopes, list) and all(isinstance(s, str) and s for s in scopes),
                 f"{what}.scopes must be an array of non-empty strings")
        clients[client_id] = {"secret": client["secret"], "scopes": list(scopes)}
    return clients


class Fault:
    """One injected fault with its selectors and the number of uses left."""

    def __init__(self, spec):
        self.spec = spec
        self.endpoint = spec.get("endpoint", "users")
        self.customer_id = spec.get("customer_id")
        self.tenant_id = spec.get("tenant_id")
        self.page = spec.get("page")
        self.action = spec["action"]
        self.status = spec.get("status", 500)
        self.headers = spec.get("headers", {})
        self.body = spec.get("body")
        self.delay_ms = spec.get("delay_ms", DEFAULT_FAULT_DELAY_MS)
        times = spec.get("times", 1)
        self.remaining = None if times == 0 else times  # None: forever

    def matches(self, endpoint, customer_id=None, tenant_id=None, page=None):
        if self.remaining == 0 or self.endpoint != endpoint:
            return False
        if self.customer_id is not None and _id_key(self.customer_id) != _id_key(customer_id):
            return False
        if self.tenant_id is not None and _id_key(self.tenant_id) != _id_key(tenant_id):
            return False
        return self.page is None or self.page == page

    def use(self):
        if self.remaining is not None:
            self.remaining -= 1

    def to_json(self):
        return dict(self.spec, remaining=self.remaining)


def parse_fault(spec, what="fault"):
    # GET returns "remaining", so accepting it lets a test PUT back what it read.
    spec = {k: v for k, v in spec.items() if k != "remaining"} if isinstance(spec, dict) else spec
    _check_keys(spec, FAULT_KEYS, what)
    endpoint = spec.get("endpoint", "users")
    _require(endpoint in ("users", "token"), f"{what}.endpoint must be users or token")
    action = spec.get("action")
    _require(action in FAULT_ACTIONS, f"{what}.action must be one of {', '.join(FAULT_ACTIONS)}")
    if endpoint == "token":
        _require(action not in USERS_ONLY_FAULT_ACTIONS,
                 f"{what}: action {action} applies only to the users endpoint")
        _require(all(k not in spec for k in ("customer_id", "tenant_id", "page")),
                 f"{what}: customer_id, tenant_id and page select users requests only")
    for key in ("customer_id", "tenant_id"):
        if key in spec:
            _parse_id(spec[key], f"{what}.{key}")
    if "page" in spec:
        _parse_positive(spec, "page", what)
    _parse_positive(spec, "times", what, default=1, minimum=0)
    status = spec.get("status", 500)
    _require(_is_int(status) and 200 <= status <= 599, f"{what}.status must be an integer 200..599")
    headers = spec.get("headers", {})
    _require(isinstance(headers, dict)
             and all(isinstance(k, str) and isinstance(v, str) and "\n" not in k + v
                     for k, v in headers.items()),
             f"{what}.headers must map header names to single-line strings")
    _require(spec.get("body") is None or isinstance(spec["body"], str),
             f"{what}.body must be a string")
    _parse_positive(spec, "delay_ms", what, default=DEFAULT_FAULT_DELAY_MS, minimum=0)
    return Fault(spec)


def parse_faults(obj, what="faults"):
    if isinstance(obj, dict):
        obj = [obj]
    _require(isinstance(obj, list), f"{what} must be a fault object or an array of them")
    return [parse_fault(f, f"{what}[{i}]") for i, f in enumerate(obj)]


class Scenario:
    """The parsed scenario: clients, token lifetime, tenants and faults."""

    def __init__(self, clients, token_lifetime, tenants, faults, description=None):
        self.clients = clients
        self.token_lifetime = token_lifetime
        self.tenants = tenants  # (customer key, tenant key) -> Tenant, in file order
        self.faults = faults
        self.description = description

    def to_json(self):
        out = {"clients": self.clients, "token_lifetime": self.token_lifetime,
               "tenants": [t.to_json() for t in self.tenants.values()],
               "faults": [f.to_json() for f in self.faults]}
        if self.description is not None:
            out["description"] = self.description
        return out


def parse_scenario(obj):
    _check_keys(obj, SCENARIO_KEYS, "scenario")
    clients = parse_clients(obj.get("clients", {}))
    token_lifetime = _parse_positive(obj, "token_lifetime", "scenario",
                                     default=DEFAULT_TOKEN_LIFETIME_SEC, minimum=0)
    tenant_list = obj.get("tenants", [])
    _require(isinstance(tenant_list, list), "tenants must be a JSON array")
    tenant_objs = [parse_tenant(t, i) for i, t in enumerate(tenant_list)]
    if "generate" in obj:
        tenant_objs += generate_tenants(obj["generate"])
    tenants = {}
    for t in tenant_objs:
        key = (_id_key(t.customer_id), _id_key(t.tenant_id))
        _require(key not in tenants,
                 f"tenant {t.customer_id}/{t.tenant_id} is listed twice")
        tenants[key] = t
    faults = parse_faults(obj.get("faults", []))
    return Scenario(clients, token_lifetime, tenants, faults, obj.get("description"))


def load_scenario_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except OSError as e:
        raise ScenarioError(f"failed to read scenario file {path}: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ScenarioError(f"scenario file {path} is not valid JSON: {e}") from e
    try:
        return parse_scenario(obj)
    except ScenarioError as e:
        raise ScenarioError(f"scenario file {path}: {e}") from e


# --- shared state ------------------------------------------------------------

class MockState:
    """Scenario, tokens, page cache, request log and counters under one lock."""

    def __init__(self, scenario, scenario_path=None, delay_ms=0):
        self.lock = threading.Lock()
        self.scenario = scenario
        self.scenario_path = scenario_path
        self.delay_ms = delay_ms
        self.tokens = {}  # token -> (client id, frozenset of scopes, monotonic expiry)
        self.page_cache = collections.OrderedDict()
        self.page_cache_bytes = 0
        self.generation = 0
        self.requests = collections.deque(maxlen=MAX_RECORDED_REQUESTS)
        self.stats = {"requests": 0, "token_requests": 0, "users_requests": 0,
                      "connections": 0, "max_concurrent": 0}
        self.in_flight = 0

    # Caller holds self.lock for every method below.

    def next_generation(self):
        self.generation += 1
        return self.generation

    def replace_scenario(self, scenario):
        for tenant in scenario.tenants.values():
            tenant.generation = self.next_generation()
        self.scenario = scenario
        self.page_cache.clear()
        self.page_cache_bytes = 0

    def find_tenant(self, customer_id, tenant_id):
        return self.scenario.tenants.get((_id_key(customer_id), _id_key(tenant_id)))

    def take_fault(self, endpoint, customer_id=None, tenant_id=None, page=None):
        for fault in self.scenario.faults:
            if fault.matches(endpoint, customer_id, tenant_id, page):
                fault.use()
                return fault
        return None

    def issue_token(self, client_id, scopes):
        now = time.monotonic()
        if len(self.tokens) > 10000:
            self.tokens = {k: v for k, v in self.tokens.items() if v[2] > now}
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (client_id, frozenset(scopes),
                              now + self.scenario.token_lifetime)
        return token

    def cached_page(self, key):
        data = self.page_cache.get(key)
        if data is not None:
            self.page_cache.move_to_end(key)
        return data

    def cache_page(self, key, data):
        self.page_cache[key] = data
        self.page_cache_bytes += len(data)
        while self.page_cache_bytes > PAGE_CACHE_BUDGET_BYTES and self.page_cache:
            _, old = self.page_cache.popitem(last=False)
            self.page_cache_bytes -= len(old)


def _page_json(items, page_index, page_size, total):
    return b"".join((b'{"data":[', b",".join(items), b'],"metadata":',
                     b'{"pageIndex":%d,"pageSize":%d,"totalCount":%d}}'
                     % (page_index, page_size, total)))


def _matching_users(tenant, emails):
    users = tenant.rendered()
    if emails is None:
        return users
    return [u for u in users if u[0] is not None and u[0] in emails]


def build_page(state, tenant, page_index, page_size, emails, fault_action=None):
    """Return the JSON bytes of one users/batch page. The caller holds the lock.

    Plain pages are cached by tenant generation, page size, page index and
    filter. Pages changed by a fault are built afresh and never cached.
    """
    key = (tenant.generation, page_size, page_index, emails)
    if fault_action not in ("shift-total", "duplicate-user"):
        data = state.cached_page(key)
        if data is not None:
            return data

    users = _matching_users(tenant, emails)
    start = (page_index - 1) * page_size
    items = [u[1] for u in users[start:start + page_size]]
    total = len(users)

    if fault_action == "shift-total":
        return _page_json(items, page_index, page_size, total + 1)
    if fault_action == "duplicate-user":
        # Page 1 has no previous page, so its own last user takes the place.
        if start > 0 and items:
            items[0] = users[start - 1][1]
        elif len(items) > 1:
            items[0] = items[-1]
        return _page_json(items, page_index, page_size, total)

    data = _page_json(items, page_index, page_size, total)
    state.cache_page(key, data)
    return data


# --- HTTP handler ------------------------------------------------------------

def _media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


def _json_bytes(obj):
    return json.dumps(obj, ensure_ascii=False, indent=None).encode("utf-8")


def _parse_page_param(query, name, default):
    values = query.get(name)
    if values is None:
        return default
    if len(values) != 1:
        raise RequestError(400, "invalid_request", f"{name} is given more than once")
    text = values[0]
    if not INTEGER_TEXT.match(text) or abs(int(text)) > MAX_INT32:
        raise RequestError(400, "invalid_request", f"{name} must be an integer, got {text!r}")
    return int(text)


def _body_for_record(body):
    """Return the request body as parsed JSON, else as text cut to a bounded length."""
    if not body:
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return body[:MAX_RECORDED_RAW_BODY_CHARS].decode("utf-8", "replace")


def _basic_credentials(header):
    """Decode an HTTP Basic Authorization header (RFC 6749 section 2.3.1)."""
    try:
        decoded = base64.b64decode(header.split(None, 1)[1], validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, "invalid_request", "malformed Basic credentials") from e
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection; serves vendor and control requests until the client closes."""

    protocol_version = "HTTP/1.1"
    server_version = "elements-mock/1.0"
    timeout = DEFAULT_IDLE_TIMEOUT_SEC

    # --- connection lifecycle ---

    def setup(self):
        # Headers and body leave in separate writes. With Nagle's algorithm the
        # body would wait for the client's delayed ACK, about 40 ms a reply.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            # The handshake runs here, in the connection's own thread, so a slow
            # client cannot stall the accept loop.
            self.request.do_handshake()
        with self.state.lock:
            self.state.stats["connections"] += 1

    def version_string(self):
        return self.server_version

    @property
    def state(self):
        return self.server.state

    def log_message(self, format, *args):  # noqa: A002 (base class signature)
        if not self.server.quiet:
            super().log_message(format, *args)

    # --- replies ---

    def send_reply(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        self.request_id = str(uuid.uuid4())
        self.reply_status = status
        self.send_response(status)
        self.send_header("request-id", self.request_id)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        self.send_reply(status, _json_bytes(obj), headers)

    def send_request_error(self, e):
        self.send_json(e.status, {"error": e.error, "message": e.message}, e.headers)

    def send_error(self, code, message=None, explain=None):
        """Reply to a request the base class rejects, with a request id and JSON."""
        self.close_connection = True
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.log_error("code %d, message %s", code, message)
        self.send_json(code, {"error": phrase.lower().replace(" ", "_"),
                              "message": message or phrase})

    # --- request reading ---

    def read_body(self, limit):
        """Read the whole request body so the connection stays usable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            self.close_connection = True
            raise RequestError(400, "invalid_request", "invalid Content-Length")
        length = int(length_text)
        if length > limit:
            self.close_connection = True
            raise RequestError(413, "payload_too_large", f"body is larger than {limit} bytes")
        return self.rfile.read(length)

    def _read_chunked(self, limit):
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(100).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                self.close_connection = True
                raise RequestError(400, "invalid_request", "invalid chunk size") from None
            total += size
            if total > limit:
                self.close_connection = True
                raise RequestError(413, "payload_too_large", f"body is larger than {limit} bytes")
            if size == 0:
                while self.rfile.readline(8192).strip():
                    pass  # trailer fields
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    # --- dispatch ---

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_mock/"):
            self.handle_control(url.path)
        else:
            self.handle_vendor(url)

    # --- vendor endpoints ---

    def handle_vendor(self, url):
        self.request_id = None
        self.reply_status = None
        self.fault_applied = None
        self.record_body = None
        started = time.time()
        match = USERS_PATH.match(url.path)
        endpoint = "other"
        if url.path == TOKEN_PATH:
            endpoint = "token"
        elif match:
            endpoint = "users"
        with self.state.lock:
            stats = self.state.stats
            stats["requests"] += 1
            if endpoint != "other":
                stats[endpoint + "_requests"] += 1
            self.state.in_flight += 1
            stats["max_concurrent"] = max(stats["max_concurrent"], self.state.in_flight)
        try:
            if endpoint == "token":
                self.handle_token()
            elif endpoint == "users":
                self.handle_users(url, *map(urllib.parse.unquote, match.groups()))
            else:
                self.read_body(MAX_VENDOR_BODY_BYTES)
                raise RequestError(404, "not_found", f"no resource at {url.path}")
        except RequestError as e:
            self.send_request_error(e)
        finally:
            with self.state.lock:
                self.state.in_flight -= 1
                self.record_request(url, started)

    def record_request(self, url, started):
        """Append this request to the log. The caller holds the lock.

        Tokens, the Authorization header and client secrets are never stored.
        """
        query = {k: v[0] if len(v) == 1 else v
                 for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS}
        entry = {"time": started, "method": self.command, "path": url.path,
                 "query": query, "headers": headers, "body": self.record_body,
                 "status": self.reply_status, "request_id": self.request_id}
        if self.fault_applied:
            entry["fault"] = self.fault_applied
        self.state.requests.append(entry)

    def apply_fault(self, fault, build_body):
        """Carry out FAULT and return True when the reply was sent or dropped.

        build_body() returns the reply the request would get without the fault,
        as (status, body bytes, headers), for the actions that spoil it.
        """
        self.fault_applied = fault.action
        action = fault.action
        if action == "delay":
            time.sleep(fault.delay_ms / 1000)
            return False
        if action == "drop-connection":
            self.close_connection = True
            return True
        if action == "status":
            body = fault.body.encode("utf-8") if fault.body is not None else _json_bytes(
                    {"error": "injected_fault", "message": f"injected HTTP {fault.status}"})
            self.send_reply(fault.status, body, fault.headers)
            return True
        if action == "malformed":
            status, body, headers = build_body()
            body = fault.body.encode("utf-8") if fault.body is not None else body[:-1] + b"<"
            self.send_reply(200, body, dict(headers, **fault.headers))
            return True
        if action == "truncate":
            status, body, headers = build_body()
            self.send_truncated(status, body, dict(headers, **fault.headers))
            return True
        return False

    def send_truncated(self, status, body, headers):
        """Promise the whole body in Content-Length, send half, then close."""
        self.close_connection = True
        self.request_id = str(uuid.uuid4())
        self.reply_status = status
        self.send_response(status)
        self.send_header("request-id", self.request_id)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- POST /connect/token ---

    def handle_token(self):
        body = self.read_body(MAX_VENDOR_BODY_BYTES)
        with self.state.lock:
            fault = self.state.take_fault("token")
        if fault and self.apply_fault(fault, lambda: self.token_reply(body)):
            return
        status, data, headers = self.token_reply(body)
        self.send_reply(status, data, headers)

    def token_reply(self, body):
        """Return (status, body, headers) for a token request (RFC 6749 4.4, 5.1, 5.2)."""
        try:
            if self.command != "POST":
                raise RequestError(405, "invalid_request", "the token endpoint takes POST",
                                   {"Allow": "POST"})
            form = self.parse_token_form(body)
            client_id, scopes = self.authenticate_client(form)
            with self.state.lock:
                token = self.state.issue_token(client_id, scopes)
                lifetime = self.state.scenario.token_lifetime
        except RequestError as e:
            return e.status, _json_bytes({"error": e.error, "error_description": e.message}), \
                    dict(e.headers, **{"Cache-Control": "no-store", "Pragma": "no-cache"})
        reply = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                 "scope": " ".join(scopes)}
        return 200, _json_bytes(reply), {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def parse_token_form(self, body):
        if _media_type(self.headers.get("Content-Type")) != "application/x-www-form-urlencoded":
            raise RequestError(400, "invalid_request",
                               "Content-Type must be application/x-www-form-urlencoded")
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=bool(body), errors="strict")
        except (UnicodeDecodeError, ValueError) as e:
            raise RequestError(400, "invalid_request", "the form body is malformed") from e
        form = {}
        for name, value in pairs:
            if name in form:
                raise RequestError(400, "invalid_request", f"parameter {name} is given more than once")
            form[name] = value
        self.record_body = {k: v for k, v in form.items() if k not in SECRET_FORM_FIELDS}

        grant_type = form.get("grant_type")
        if not grant_type:
            raise RequestError(400, "invalid_request", "grant_type is missing")
        if grant_type != "client_credentials":
            raise RequestError(400, "unsupported_grant_type",
                               f"grant type {grant_type!r} is not supported")
        return form

    def authenticate_client(self, form):
        """Check the client's credentials and requested scope and return (client id, scopes)."""
        header = self.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            if "client_secret" in form:
                raise RequestError(400, "invalid_request", "use one client authentication method")
            client_id, secret = _basic_credentials(header)
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if "client_assertion" in form:
            raise RequestError(400, "invalid_client", "client assertions are not supported by this mock")
        if not client_id or secret is None:
            raise RequestError(400, "invalid_client", "client authentication is missing")

        with self.state.lock:
            client = self.state.scenario.clients.get(client_id)
        if client is None or not hmac.compare_digest(client["secret"].encode("utf-8"),
                                                     secret.encode("utf-8")):
            raise RequestError(400, "invalid_client", "unknown client or wrong secret")

        requested = form.get("scope", "").split()
        if not requested:
            return client_id, list(client["scopes"])
        denied = [s for s in requested if s not in client["scopes"]]
        if denied:
            raise RequestError(400, "invalid_scope", f"scope not granted to this client: {' '.join(denied)}")
        return client_id, list(dict.fromkeys(requested))

    # --- POST .../users/batch ---

    def check_bearer(self):
        header = self.headers.get("Authorization", "")
        parts = header.split(None, 1)
        token = parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else None
        with self.state.lock:
            entry = self.state.tokens.get(token) if token else None
        if entry is None or entry[2] <= time.monotonic():
            raise RequestError(401, "invalid_token", "the access token is missing, unknown or expired",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if SCOPE_USERS_READ not in entry[1]:
            raise RequestError(403, "insufficient_scope", f"the token lacks scope {SCOPE_USERS_READ}",
                               {"WWW-Authenticate":
                                f'Bearer error="insufficient_scope", scope="{SCOPE_USERS_READ}"'})
        return token

    def parse_users_request(self, url, body):
        """Validate the query and body and return (page index, page size, email filter or None)."""
        if _media_type(self.headers.get("Content-Type")) != "application/json":
            raise RequestError(400, "invalid_request", "Content-Type must be application/json")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        page_index = _parse_page_param(query, "pageIndex", 1)
        page_size = _parse_page_param(query, "pageSize", DEFAULT_PAGE_SIZE)
        if page_index < 1:
            raise RequestError(400, "invalid_request", "pageIndex must be 1 or more")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise RequestError(400, "invalid_request", f"pageSize must be 1..{MAX_PAGE_SIZE}")

        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise RequestError(400, "invalid_request", "the body is not valid JSON") from e
        if not isinstance(request, dict):
            raise RequestError(400, "invalid_request", "the body must be a JSON object")
        # Other keys, such as the first published page's "email", are ignored as
        # the service ignores them, so such a request gets every user.
        emails = request.get("userEmails")
        if "userEmails" not in request:
            return page_index, page_size, None
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise RequestError(400, "invalid_request", "userEmails must be an array of strings")
        # NOTE: an empty userEmails array is taken as no filter, because the
        # vendor's pages do not say what the service does with one.
        return page_index, page_size, frozenset(e.casefold() for e in emails) or None

    def handle_users(self, url, customer_id, tenant_id):
        if self.state.delay_ms:
            time.sleep(self.state.delay_ms / 1000)
        body = self.read_body(MAX_VENDOR_BODY_BYTES)
        self.record_body = _body_for_record(body)
        if self.command != "POST":
            raise RequestError(405, "method_not_allowed", "users/batch takes POST", {"Allow": "POST"})
        token = self.check_bearer()
        page_index, page_size, emails = self.parse_users_request(url, body)

        with self.state.lock:
            fault = self.state.take_fault("users", customer_id, tenant_id, page_index)
            if fault and fault.action == "expire-token":
                self.state.tokens.pop(token, None)
        if fault and fault.action == "expire-token":
            self.fault_applied = fault.action
            raise RequestError(401, "invalid_token", "the access token expired",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})

        def page_reply(fault_action=None):
            with self.state.lock:
                tenant = self.state.find_tenant(customer_id, tenant_id)
                if tenant is None:
                    return 404, _json_bytes({"error": "not_found", "message":
                                             f"no tenant {tenant_id} for customer {customer_id}"}), {}
                return 200, build_page(self.state, tenant, page_index, page_size, emails,
                                       fault_action), {}

        if fault and self.apply_fault(fault, page_reply):
            return
        status, data, headers = page_reply(fault.action if fault else None)
        self.send_reply(status, data, dict(headers, **(fault.headers if fault else {})))

    # --- control endpoints ---

    def handle_control(self, path):
        self.request_id = None
        try:
            body = self.read_body(MAX_CONTROL_BODY_BYTES)
            request = None
            if body:
                try:
                    request = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    raise RequestError(400, "invalid_request", f"the body is not valid JSON: {e}") from e
            self.send_json(200, self.control(path, request))
        except ScenarioError as e:
            self.send_json(400, {"error": "invalid_scenario", "message": str(e)})
        except RequestError as e:
            self.send_request_error(e)

    def control(self, path, request):
        """Find the control route for this method and path and run it; return its JSON reply."""
        allowed = []
        for method, pattern, name in CONTROL_ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if method != self.command:
                allowed.append(method)
                continue
            ids = [urllib.parse.unquote(g) for g in match.groups()]
            return getattr(self, name)(request, *ids)
        if allowed:
            raise RequestError(405, "method_not_allowed", f"{path} takes {', '.join(allowed)}",
                               {"Allow": ", ".join(allowed)})
        raise RequestError(404, "not_found", f"no control endpoint {path}")

    def get_scenario(self, request):
        with self.state.lock:
            return self.state.scenario.to_json()

    def put_scenario(self, request):
        scenario = parse_scenario(request)
        with self.state.lock:
            self.state.replace_scenario(scenario)
        return {"tenants": len(scenario.tenants), "faults": len(scenario.faults)}

    def get_tenants(self, request):
        with self.state.lock:
            return [{"customer_id": t.customer_id, "tenant_id": t.tenant_id,
                     "field_case": t.field_case, "users": t.user_count}
                    for t in self.state.scenario.tenants.values()]

    def put_tenant_users(self, request, customer_id, tenant_id):
        _parse_id(customer_id, "customer id")
        _parse_id(tenant_id, "tenant id")
        users = parse_users(request, f"tenant {customer_id}/{tenant_id}")
        with self.state.lock:
            old = self.state.find_tenant(customer_id, tenant_id)
            tenant = Tenant(customer_id, tenant_id, old.field_case if old else "camel",
                            users, old.name if old else None)
            tenant.generation = self.state.next_generation()
            self.state.scenario.tenants[(_id_key(customer_id), _id_key(tenant_id))] = tenant
        return {"customer_id": customer_id, "tenant_id": tenant_id, "users": len(users)}

    def delete_tenant(self, request, customer_id, tenant_id):
        with self.state.lock:
            tenant = self.state.scenario.tenants.pop(
                    (_id_key(customer_id), _id_key(tenant_id)), None)
        if tenant is None:
            raise RequestError(404, "not_found", f"no tenant {tenant_id} for customer {customer_id}")
        return {"deleted": True}

    def get_faults(self, request):
        with self.state.lock:
            return [f.to_json() for f in self.state.scenario.faults]

    def post_faults(self, request):
        faults = parse_faults(request, "fault")
        with self.state.lock:
            self.state.scenario.faults.extend(faults)
            return {"faults": len(self.state.scenario.faults)}

    def delete_faults(self, request):
        with self.state.lock:
            self.state.scenario.faults.clear()
        return {"faults": 0}

    def expire_tokens(self, request):
        with self.state.lock:
            revoked = len(self.state.tokens)
            self.state.tokens.clear()
        return {"revoked": revoked}

    def get_requests(self, request):
        with self.state.lock:
            return list(self.state.requests)

    def delete_requests(self, request):
        with self.state.lock:
            self.state.requests.clear()
        return {"cleared": True}

    def get_stats(self, request):
        with self.state.lock:
            return dict(self.state.stats)

    def delete_stats(self, request):
        with self.state.lock:
            self.state.stats = dict.fromkeys(self.state.stats, 0)
            self.state.stats["max_concurrent"] = self.state.in_flight
        return {"cleared": True}


# Control routes: method, path pattern (groups are URL-encoded ids), handler method.
CONTROL_ROUTES = [
        ("GET", re.compile(r"^/_mock/scenario$"), "get_scenario"),
        ("PUT", re.compile(r"^/_mock/scenario$"), "put_scenario"),
        ("GET", re.compile(r"^/_mock/tenants$"), "get_tenants"),
        ("PUT", re.compile(r"^/_mock/tenants/([^/]+)/([^/]+)/users$"), "put_tenant_users"),
        ("DELETE", re.compile(r"^/_mock/tenants/([^/]+)/([^/]+)$"), "delete_tenant"),
        ("GET", re.compile(r"^/_mock/faults$"), "get_faults"),
        ("POST", re.compile(r"^/_mock/faults$"), "post_faults"),
        ("DELETE", re.compile(r"^/_mock/faults$"), "delete_faults"),
        ("POST", re.compile(r"^/_mock/expire-tokens$"), "expire_tokens"),
        ("GET", re.compile(r"^/_mock/requests$"), "get_requests"),
        ("DELETE", re.compile(r"^/_mock/requests$"), "delete_requests"),
        ("GET", re.compile(r"^/_mock/stats$"), "get_stats"),
        ("DELETE", re.compile(r"^/_mock/stats$"), "delete_stats"),
]


class MockServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not hold up shutdown.
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, state, quiet, family):
        self.address_family = family
        self.state = state
        self.quiet = quiet
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            if not self.quiet:
                print(f"connection from {client_address[0]} ended: {exc}", file=sys.stderr)
            return
        super().handle_error(request, client_address)


# --- command line ------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description="Mock of the Elements API (token and users/batch endpoints).")
    parser.add_argument("--scenario", metavar="FILE",
                   help="JSON scenario file; reloaded on SIGHUP (default: no clients, no tenants)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 picks a free one (default 0)")
    parser.add_argument("--port-file", metavar="PATH", help="write the port number here once listening")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    parser.add_argument("--delay-ms", type=int, default=0,
                   help="milliseconds added to every users/batch reply (default 0)")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_SEC,
                   help=f"seconds before an idle connection is closed (default {DEFAULT_IDLE_TIMEOUT_SEC})")
    parser.add_argument("--quiet", action="store_true", help="do not log each request to standard error")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            parser.error(f"--host {args.host} is not a loopback address; the mock listens on loopback only")
    except ValueError:
        parser.error(f"--host must be a literal loopback address such as 127.0.0.1 or ::1, got {args.host!r}")
    return args


def write_port_file(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def reload_scenario(state):
    if not state.scenario_path:
        print("SIGHUP: no --scenario file to reload", file=sys.stderr)
        return
    try:
        scenario = load_scenario_file(state.scenario_path)
    except ScenarioError as e:
        print(f"SIGHUP: keeping the current scenario: {e}", file=sys.stderr)
        return
    with state.lock:
        state.replace_scenario(scenario)
    print(f"SIGHUP: reloaded {state.scenario_path} ({len(scenario.tenants)} tenants)",
          file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    try:
        scenario = load_scenario_file(args.scenario) if args.scenario else parse_scenario({})
    except ScenarioError as e:
        print(f"elements_mock: {e}", file=sys.stderr)
        return 1

    state = MockState(None, args.scenario, args.delay_ms)
    state.replace_scenario(scenario)
    Handler.timeout = args.idle_timeout
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        server = MockServer((args.host, args.port), state, args.quiet, family)
    except OSError as e:
        print(f"elements_mock: failed to listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1

    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            print(f"elements_mock: failed to load --tls-cert/--tls-key: {e}", file=sys.stderr)
            return 1
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        scheme = "https"

    stop = threading.Event()
    reload_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())

    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="serve", daemon=True)
    thread.start()
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"listening on {scheme}://{host}:{port}", flush=True)
    if args.port_file:
        write_port_file(args.port_file, port)

    # Signal handlers only set events, so the work happens here, outside them.
    while not stop.is_set():
        stop.wait(0.2)
        if reload_requested.is_set():
            reload_requested.clear()
            reload_scenario(state)

    server.shutdown()
    server.server_close()
    if not args.quiet:
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
