"""Issue 18: staff sign in to the hub with the company's IdP. A real OpenID provider
(npm `oidc-provider`, pinned; fixtures/oidc/provider.mjs) with test people and groups;
the hub configured by hub.toml; the browser played by an HTTP client that follows the
redirects and fills in the provider's own login page. Roles come from the IdP groups
mapped in hub.toml and are enforced on the running hub; a person whose groups hold no
role is refused and the refusal is an alert; a sign-in is used once; signing out ends
the session; a cookie alone cannot change anything from another site."""

import re
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx2 as httpx
import pytest

from conftest import NODE_BIN, ROOT, wait_for
from test_hub import Hub

PROVIDER = ROOT / "fixtures" / "oidc" / "provider.mjs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Form(HTMLParser):
    """The first form of a page: its action and its inputs' names and values."""

    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def browse(client: httpx.Client, url: str, stop_at: str) -> httpx.Response:
    """Follows redirects (and the provider's login form) until a URL starting with `stop_at`."""
    response = client.get(url)
    for _ in range(20):
        if response.status_code in (302, 303):
            url = urljoin(str(response.url), response.headers["location"])
            if url.startswith(stop_at):
                return client.get(url)
            response = client.get(url)
        elif response.status_code == 200 and "<form" in response.text:
            form = Form()
            form.feed(response.text)
            form.fields.update(client.login)
            response = client.post(urljoin(str(response.url), form.action), data=form.fields)
        else:
            return response
    raise AssertionError(f"too many redirects, last {response.status_code} {response.url}")


@pytest.fixture
def signed_in_hub(tmp_path):
    secret = tmp_path / "oidc-client-secret"
    secret.write_text("s3cret-oidc-client-7f3a\n")
    port = free_port()
    log = open(tmp_path / "provider.log", "wb")
    provider = subprocess.Popen([str(NODE_BIN / "node"), str(PROVIDER), "--port", "0", "--client-secret-file",
                                 str(secret), "--redirect", f"http://127.0.0.1:{port}/v1/auth/callback"],
                                stdout=log, stderr=subprocess.STDOUT)

    def listening():
        if provider.poll() is not None:
            raise AssertionError((tmp_path / "provider.log").read_text())
        found = re.search(r"OIDC provider on (http://127\.0\.0\.1:\d+)", (tmp_path / "provider.log").read_text())
        return found.group(1) if found else None

    issuer = wait_for(listening, timeout=60, what="the OpenID provider")
    config = tmp_path / "hub.toml"
    config.write_text(f'''public_url = "http://127.0.0.1:{port}"
[oidc]
issuer = "{issuer}"
client_id = "countersign-hub"
client_secret_file = "{secret}"
[roles]
"it-auditors" = "auditor"
"it-admins" = "admin"
"it-policy" = "policy-admin"
''')
    hub = Hub(tmp_path, "sqlite", extra_env={"COUNTERSIGN_HUB_CONFIG": str(config)})
    hub.port = port
    hub.start()
    try:
        yield hub
    finally:
        hub.kill()
        provider.kill()
        provider.wait(10)
        log.close()


def person(email: str) -> httpx.Client:
    client = httpx.Client(timeout=30, follow_redirects=False)
    client.login = {"login": email, "password": "any"}
    return client


def sign_in(hub: Hub, email: str) -> tuple[httpx.Client, httpx.Response]:
    browser = person(email)
    answer = browse(browser, f"{hub.url}/v1/auth/login", f"{hub.url}/v1/auth/callback")
    return browser, answer


def test_people_sign_in_with_the_idp_and_hold_the_roles_of_their_groups(signed_in_hub):
    hub = signed_in_hub
    ana, answer = sign_in(hub, "ana@example.com")
    assert answer.status_code == 200, answer.text
    assert answer.json()["signed_in"] == "ana@example.com" and answer.json()["roles"] == ["auditor"]
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert ana.get(f"{hub.url}/v1/audit").status_code == 200
    assert ana.get(f"{hub.url}/v1/auth/whoami").json() == {"actor": "person ana@example.com", "roles": ["auditor"]}
    refused = ana.put(f"{hub.url}/v1/policy", content="[policy]\ndeny = []\n", headers={"Origin": hub.url})
    assert refused.status_code == 403 and "role `auditor` may not publish policy" in refused.json()["error"]

    pia, answer = sign_in(hub, "pia@example.com")
    assert answer.json()["roles"] == ["auditor", "policy-admin"], "the roles of every mapped group"
    assert pia.get(f"{hub.url}/v1/audit").status_code == 200

    log = httpx.get(f"{hub.url}/v1/admin-log", headers={"Authorization": f"Bearer {hub.admin}"}).json()
    assert any(e["action"] == "sign-in" and e["actor"] == "person ana@example.com" for e in log), log
    assert any(e["action"] == "audit-query" and e["actor"] == "person ana@example.com" for e in log), log

    # Signing out ends the session at the hub, not only in the browser.
    kept = ana.cookies.get("countersign_hub_session")
    out = ana.post(f"{hub.url}/v1/auth/logout", headers={"Origin": hub.url})
    assert out.status_code == 200, out.text
    stale = httpx.get(f"{hub.url}/v1/audit", headers={"Cookie": f"countersign_hub_session={kept}"})
    assert stale.status_code == 401 and "sign in again" in stale.json()["error"]


def test_a_person_whose_groups_hold_no_role_is_refused_and_it_is_an_alert(signed_in_hub):
    hub = signed_in_hub
    nora, answer = sign_in(hub, "nora@example.com")
    assert answer.status_code == 403, answer.text
    assert "none of nora@example.com's groups" in answer.json()["error"]
    assert "countersign_hub_session" not in answer.headers.get("set-cookie", "")
    alerts = httpx.get(f"{hub.url}/v1/alerts", headers={"Authorization": f"Bearer {hub.admin}"}).json()
    assert [a for a in alerts if a["kind"] == "sign-in-refused" and "nora@example.com" in a["detail"]], alerts


def test_a_sign_in_is_used_once_and_a_cookie_cannot_change_anything_from_elsewhere(signed_in_hub):
    hub = signed_in_hub
    ivan = person("ivan@example.com")
    answer = browse(ivan, f"{hub.url}/v1/auth/login", f"{hub.url}/v1/auth/callback")
    assert answer.status_code == 200 and answer.json()["roles"] == ["admin"], answer.text
    replay = httpx.get(str(answer.url))
    assert replay.status_code == 400 and "already used" in replay.json()["error"], replay.text
    forged_state = httpx.get(f"{hub.url}/v1/auth/callback", params={"code": "x", "state": "made-up"})
    assert forged_state.status_code == 400

    # Cross-site: the cookie alone (no Origin, or another site's) changes nothing.
    for origin in ({}, {"Origin": "https://evil.example"}):
        r = ivan.post(f"{hub.url}/v1/enrollment-tokens", json={"hours": 1}, headers=origin)
        assert r.status_code == 403 and "Origin" in r.json()["error"], (origin, r.text)
    log = httpx.get(f"{hub.url}/v1/admin-log", headers={"Authorization": f"Bearer {hub.admin}"}).json()
    assert not [e for e in log if e["action"] == "enrollment-token-create"]
    made = ivan.post(f"{hub.url}/v1/enrollment-tokens", json={"hours": 1}, headers={"Origin": hub.url})
    assert made.status_code == 200 and made.json()["token"].startswith("cse_")

    # No session token, client secret or ID token in the hub's log or database.
    session = ivan.cookies.get("countersign_hub_session")
    text = (hub.tmp / "hub.log").read_text()
    db = b"".join(p.read_bytes() for p in (hub.tmp / "hub-home").glob("hub.db*"))
    for secret in (session, "s3cret-oidc-client-7f3a"):
        assert secret not in text and secret.encode() not in db
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.", text), "no JWT in the hub's log"
    assert not re.search(rb"eyJ[\w-]+\.eyJ[\w-]+\.", db), "no JWT in the hub's database"


def test_a_hub_toml_mistake_names_the_file_and_the_key(tmp_path):
    from test_hub import HUB_BIN

    config = tmp_path / "hub.toml"
    config.write_text('database = "postgres://hub:s3cret@db/hub"\n')
    r = subprocess.run([str(HUB_BIN), "serve", "--config", str(config)], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "COUNTERSIGN_HUB_HOME": str(tmp_path / "home")})
    assert r.returncode != 0
    assert f"{config}: `database` holds a password" in r.stderr and "s3cret" not in r.stderr, r.stderr
