#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The straightforward client a user would script instead of cbm365-watchd.

It is the benchmark's comparison point: standard library only, one request at
a time. It gets a token, fetches every page of every tenant one after another
with urllib, builds a dict per user, compares the dicts with those of the
previous run kept in a JSON file, and writes the file back. It prints the
counts as one JSON object on standard output.

Usage:
    sequential_client.py --token-url URL --base-url URL --client-id ID
                         --secret-file FILE --targets FILE --state FILE
                         [--page-size N] [--max-tenants N]

FILE for --targets is a JSON array of {"customer_id": ..., "tenant_id": ...}.
"""

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request

SCOPE = "elements.cbprotected.read.all"
USERS_PATH = ("/partner/external/v3/general/customers/{customer}/tenants/{tenant}"
              "/cloud-backup-m365/users/batch?pageIndex={page}&pageSize={size}")
TIMEOUT_SEC = 60
MAX_PAGES_PER_TENANT = 100000

# The benchmark talks to 127.0.0.1 only: no proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_token(token_url, client_id, secret):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id,
                                   "client_secret": secret, "scope": SCOPE}).encode("ascii")
    request = urllib.request.Request(token_url, data=form, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
    with OPENER.open(request, timeout=TIMEOUT_SEC) as reply:
        return json.load(reply)["access_token"]


def fetch_tenant(base_url, token, target, page_size):
    """Return {user id: user dict} of one tenant, fetching its pages in order."""
    users = {}
    for page in range(1, MAX_PAGES_PER_TENANT + 1):
        url = base_url + USERS_PATH.format(customer=target["customer_id"], tenant=target["tenant_id"],
                                           page=page, size=page_size)
        request = urllib.request.Request(url, data=b"{}", method="POST", headers={
                "Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with OPENER.open(request, timeout=TIMEOUT_SEC) as reply:
            body = json.load(reply)
        for user in body["data"]:
            users[user["id"]] = {
                    "email": user.get("email"),
                    "name": user.get("displayName"),
                    "modules": {str(m["module"]): bool(m["isProtected"])
                                for m in user.get("moduleStatus") or []},
            }
        if page * page_size >= body["metadata"]["totalCount"] or not body["data"]:
            return users
    raise RuntimeError(f"tenant {target['tenant_id']} has more than {MAX_PAGES_PER_TENANT} pages")


def diff_tenant(old, new, counts):
    """Add the changes between two {user id: user dict} maps to counts."""
    for uid, user in new.items():
        before = old.get(uid)
        if before is None:
            counts["added"] += 1
            continue
        if before["email"] != user["email"] or before["name"] != user["name"]:
            counts["changed"] += 1
        for module in before["modules"].keys() | user["modules"].keys():
            was = before["modules"].get(module, False)
            now = user["modules"].get(module, False)
            if was and not now:
                counts["lost"] += 1
            elif now and not was:
                counts["gained"] += 1
    counts["removed"] += sum(1 for uid in old if uid not in new)


def load_state(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_state(path, state):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def main(argv):
    parser = argparse.ArgumentParser(description="Poll every tenant one page at a time and diff.")
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--secret-file", required=True, help="file whose first line is the client secret")
    parser.add_argument("--targets", required=True, help="JSON array of customer_id/tenant_id objects")
    parser.add_argument("--state", required=True, help="JSON file of the previous run, rewritten")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--max-tenants", type=int, default=0, help="poll only the first N targets (0: all)")
    args = parser.parse_args(argv)

    with open(args.secret_file, encoding="utf-8") as f:
        secret = f.readline().strip()
    with open(args.targets, encoding="utf-8") as f:
        targets = json.load(f)
    if args.max_tenants:
        targets = targets[:args.max_tenants]

    token = fetch_token(args.token_url, args.client_id, secret)
    previous = load_state(args.state)
    state = {}
    counts = dict.fromkeys(("tenants", "users", "pages", "added", "removed", "lost", "gained", "changed"), 0)
    for target in targets:
        key = f"{target['customer_id']}/{target['tenant_id']}"
        users = fetch_tenant(args.base_url, token, target, args.page_size)
        counts["tenants"] += 1
        counts["users"] += len(users)
        counts["pages"] += max(1, -(-len(users) // args.page_size))
        if previous is not None and key in previous:
            diff_tenant(previous[key], users, counts)
        state[key] = users
    save_state(args.state, state)
    counts["baseline"] = previous is None
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
