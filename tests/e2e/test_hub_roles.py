"""Issue 18 (first part): staff reach the hub with API tokens that carry a role, made with
`countersign-hub api-token create`; every route enforces its role on the running hub;
revocation and expiry take effect on the next request; the break-glass admin token is
off unless configured and every use of it is an alert. No token lands in the hub's log
or database."""

import json
import re
import subprocess

import httpx2 as httpx

from conftest import wait_for
from test_hub import HUB_BIN, Hub, hub  # noqa: F401  (the hub fixture: SQLite and PostgreSQL)


def hub_cli(h: Hub, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(HUB_BIN), *args], env=h.env, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"countersign-hub {' '.join(args)}: {r.stderr}"
    return r


def call(h: Hub, method: str, path: str, token: str | None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{h.url}{path}", headers=headers, timeout=30, **kwargs)


def test_roles_are_enforced_on_the_running_hub_and_revocation_is_immediate(hub):  # noqa: F811
    made = hub_cli(hub, "api-token", "create", "--role", "auditor", "--expires", "30d", "--name", "siem-export")
    auditor = made.stdout.strip()
    assert re.fullmatch(r"csk_[0-9a-f]{64}", auditor), f"the token alone on stdout: {made.stdout!r}"
    viewer = hub_cli(hub, "api-token", "create", "--role", "viewer", "--name", "dashboard").stdout.strip()

    assert call(hub, "GET", "/v1/audit", auditor).status_code == 200
    assert call(hub, "GET", "/v1/devices", viewer).status_code == 200
    refused = call(hub, "GET", "/v1/audit", viewer)
    assert refused.status_code == 403 and "role `viewer` may not read the audit trail" in refused.json()["error"]
    publish = call(hub, "PUT", "/v1/policy", auditor, content="[policy]\ndeny = []\n")
    assert publish.status_code == 403 and "policy-admin, admin" in publish.json()["error"], publish.text
    enroll = call(hub, "POST", "/v1/enrollment-tokens", auditor, json={"hours": 1})
    assert enroll.status_code == 403, enroll.text
    log = call(hub, "GET", "/v1/admin-log", hub.admin).json()
    assert not [e for e in log if e["action"] in ("policy-publish", "enrollment-token-create")], \
        "a refused request did nothing"
    assert any(e["action"] == "audit-query" and e["actor"].startswith("api-token siem-export (") for e in log), log

    listed = json.loads(hub_cli(hub, "api-token", "list", "--json").stdout)
    row = next(t for t in listed if t["name"] == "siem-export")
    assert row["role"] == "auditor" and row["expires_at"] and not row["revoked_at"]
    assert auditor not in json.dumps(listed)
    hub_cli(hub, "api-token", "revoke", row["id"])
    after = call(hub, "GET", "/v1/audit", auditor)
    assert after.status_code == 401 and "`siem-export` was revoked" in after.json()["error"], after.text
    log = call(hub, "GET", "/v1/admin-log", hub.admin).json()
    assert any(e["action"] == "api-token-revoke" and e["actor"].startswith("countersign-hub CLI") for e in log), log


def test_api_token_create_refuses_bad_input_with_a_clear_line(tmp_path):
    h = Hub(tmp_path, "sqlite")
    bad_role = hub_cli(h, "api-token", "create", "--role", "root", check=False)
    assert bad_role.returncode != 0 and "`root` is not a role" in bad_role.stderr and not bad_role.stdout
    bad_life = hub_cli(h, "api-token", "create", "--role", "viewer", "--expires", "soon", check=False)
    assert bad_life.returncode != 0 and "`soon` is not a lifetime" in bad_life.stderr and not bad_life.stdout
    too_long = hub_cli(h, "api-token", "create", "--role", "viewer", "--expires", "400d", check=False)
    assert too_long.returncode != 0 and "366 days" in too_long.stderr and not too_long.stdout


def test_the_break_glass_token_is_off_unless_configured_and_every_use_is_an_alert(tmp_path):
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    off = Hub(tmp_path / "off", "sqlite").start()
    try:
        r = call(off, "GET", "/v1/devices", off.glass)
        assert r.status_code == 401, "a hub started without its digest takes no break-glass token"
        assert not [a for a in call(off, "GET", "/v1/alerts", off.admin).json() if a["kind"] == "break-glass"]
    finally:
        off.kill()

    on = Hub(tmp_path / "on", "sqlite")
    on.break_glass = True
    on.start()
    try:
        assert call(on, "GET", "/v1/devices", on.glass).status_code == 200
        assert call(on, "POST", "/v1/enrollment-tokens", on.glass, json={"hours": 1}).status_code == 200
        alerts = [a for a in call(on, "GET", "/v1/alerts", on.admin).json() if a["kind"] == "break-glass"]
        assert [a["detail"] for a in alerts] == ["the break-glass admin token was used: GET /v1/devices",
                                                 "the break-glass admin token was used: POST /v1/enrollment-tokens"]
        log = call(on, "GET", "/v1/admin-log", on.admin).json()
        assert [e["actor"] for e in log if e["action"] == "enrollment-token-create"] == ["break-glass"]
        hub_log = wait_for(lambda: (t := (on.tmp / "hub.log").read_text()) and "break-glass" in t and t,
                           what="the hub's warning")
        # No token, in any form a person could use, in the hub's log or database.
        db = (on.tmp / "hub-home" / "hub.db").read_bytes() + b"".join(
            p.read_bytes() for p in (on.tmp / "hub-home").glob("hub.db-*"))
        for secret in (on.glass, on.admin):
            assert secret not in hub_log and secret.encode() not in db
    finally:
        on.kill()


def test_an_expired_token_is_refused_with_its_expiry(tmp_path):
    import sqlite3

    h = Hub(tmp_path, "sqlite").start()
    try:
        token = hub_cli(h, "api-token", "create", "--role", "auditor", "--expires", "1h", "--name", "short").stdout.strip()
        assert call(h, "GET", "/v1/audit", token).status_code == 200
        # An hour is too long to wait for: the stored expiry is moved into the past, as time would.
        with sqlite3.connect(h.tmp / "hub-home" / "hub.db") as db:
            db.execute("UPDATE api_tokens SET expires_unix = 1 WHERE name = 'short'")
        r = call(h, "GET", "/v1/audit", token)
        assert r.status_code == 401 and "`short` expired at" in r.json()["error"], r.text
    finally:
        h.kill()
