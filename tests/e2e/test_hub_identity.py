"""Issue 18: devices bound to a verified person. `countersign enroll HUB_URL` without a
token runs the hub's device authorization grant (RFC 8628): the person opens the hub's
page, signs in with the company's IdP (the real OpenID provider of
fixtures/oidc/provider.mjs, driven by an HTTP client that fills in its login form),
sees the device and confirms it; the device's records then name them, verified. A
device enrolled by token is unverified until its person signs in. The hub refuses a
batch naming another verified person or another device."""

import json
import re
import subprocess
import threading
import uuid
from urllib.parse import urljoin

import httpx2 as httpx
import pytest

from conftest import BIN, connect, memory_server, text_of, wait_for
from test_hub_sign_in import Form, person, signed_in_hub  # noqa: F401  (the fixture: a hub with [oidc])

pytestmark = pytest.mark.anyio



def os_account(gw) -> str:
    """The OS account the gateway names (USER, else LOGNAME, else `uid:N`)."""
    return json.loads(gw.cli("whoami", "--json").stdout)["os_user"]


class Confirmation(Form):
    """The confirmation page: its hidden `confirm` and the text around it."""


def confirm_page(browser: httpx.Client, url: str, hub_url: str) -> httpx.Response:
    """Opens `url` (the hub's /enroll page) and follows the sign-in at the IdP until the
    hub's callback answers with the confirmation page."""
    response = browser.get(url)
    for _ in range(20):
        if response.status_code in (302, 303):
            response = browser.get(urljoin(str(response.url), response.headers["location"]))
        elif response.status_code in (200, 403) and str(response.url).startswith(f"{hub_url}/v1/auth/callback"):
            # The confirmation page, or the hub's refusal to offer one.
            return response
        elif response.status_code == 200 and "<form" in response.text:
            form = Form()
            form.feed(response.text)
            form.fields.update(browser.login)
            response = browser.post(urljoin(str(response.url), form.action), data=form.fields)
        else:
            raise AssertionError(f"{response.status_code} {response.url}: {response.text[:500]}")
    raise AssertionError("too many redirects")


def answer(browser: httpx.Client, page: httpx.Response, hub_url: str, decision: str) -> httpx.Response:
    form = Form()
    form.feed(page.text)
    assert form.action == "/enroll/confirm" and form.fields.get("confirm", "").startswith("csdk_")
    return browser.post(f"{hub_url}/enroll/confirm", data={"confirm": form.fields["confirm"], "decision": decision},
                        headers={"Origin": hub_url})


class Enrolling:
    """`countersign enroll HUB_URL …` running, its printed lines collected."""

    def __init__(self, gw, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([str(BIN), "enroll", *args], env={**gw.env, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def address(self) -> str:
        def printed():
            if self.proc.poll() is not None:
                raise AssertionError(f"enroll ended: {self.proc.stderr.read()}")
            text = "".join(self.lines)
            found = re.search(r"open (http://\S+)\)", text)
            return found.group(1) if found else None
        return wait_for(printed, timeout=30, what="the address and code")

    def code(self) -> str:
        return re.search(r"confirm the code ([A-Z]{4}-[A-Z]{4})", "".join(self.lines)).group(1)

    def finish(self) -> tuple[int, str, str]:
        self.proc.wait(60)
        return self.proc.returncode, "".join(self.lines), self.proc.stderr.read()


def memory_gateway(make_gateway, tmp_path):
    return make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})


async def one_call(gw, name: str):
    async with connect(gw, "http", "memory") as client:
        r = await client.call_tool("create_entities", {"entities": [{"name": name, "entityType": "t",
                                                                     "observations": []}]})
        assert not r.is_error, text_of(r)


def enroll_by_code(gw, hub, email: str, *extra: str) -> str:
    enrolling = Enrolling(gw, hub.url, "--no-browser", "--name", "laptop-of-" + email.split("@")[0], *extra)
    address = enrolling.address()
    assert address.startswith(f"{hub.url}/enroll?user_code=")
    browser = person(email)
    page = confirm_page(browser, address, hub.url)
    # The person sees what they approve: the device's name, its account and the code.
    assert f"laptop-of-{email.split('@')[0]}" in page.text and enrolling.code() in page.text
    assert os_account(gw) in page.text and email in page.text
    done = answer(browser, page, hub.url, "approve")
    assert done.status_code == 200 and "Approved" in done.text
    code, out, err = enrolling.finish()
    assert code == 0, err
    return out


async def test_enrolling_by_device_code_binds_the_device_to_the_person_who_signed_in(make_gateway, tmp_path,
                                                                                       signed_in_hub):
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    OS_USER = os_account(gw)
    out = enroll_by_code(gw, hub, "nora@example.com")
    # Nora holds no role on the hub: enrolling her own device needs none.
    assert "enrolled as nora@example.com" in out
    who = gw.cli("whoami").stdout.splitlines()
    assert who[0] == "nora@example.com" and who[1].startswith("device ")
    assert json.loads(gw.cli("whoami", "--json").stdout)["user_verified"] is True
    # The gateway was told at once: its next record names her, verified, with the OS account.
    await one_call(gw, "after-enroll")
    calls = [r for r in gw.audit() if r["kind"] == "call"]
    assert calls and all(r["user"] == "nora@example.com" and r["user_verified"] is True and r["os_user"] == OS_USER
                         for r in calls)
    assert int(gw.cli("sync", "--now").stdout.strip()) > 0
    remote = [r for r in hub.get("/v1/audit").json() if r["kind"] == "call"]
    assert [r["id"] for r in remote] == [r["id"] for r in calls]
    assert all(r["user"] == "nora@example.com" and r["user_verified"] is True and r["os_user"] == OS_USER
               for r in remote)
    log = hub.get("/v1/admin-log").json()
    assert any(e["action"] == "device-enrollment-approved" and e["actor"] == "person nora@example.com" for e in log)
    assert any(e["action"] == "device-enrolled" and e["actor"] == "person nora@example.com" for e in log)
    # The code was used once; the device code and credential are in no file of the device.
    for f in gw.home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"csdc_" not in data and b"csd_" not in data and b"csdk_" not in data, f


async def test_a_token_enrolled_device_is_unverified_until_its_person_signs_in(make_gateway, tmp_path,
                                                                               signed_in_hub):
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    OS_USER = os_account(gw)
    gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "mdm-laptop")
    assert gw.cli("whoami").stdout.splitlines()[0] == f"unverified: {OS_USER}"
    await one_call(gw, "before-binding")
    out = enroll_by_code(gw, hub, "ana@example.com")
    assert "bound to ana@example.com" in out
    await one_call(gw, "after-binding")
    gw.cli("sync", "--now")
    remote = {r["arguments"]["entities"][0]["name"]: r
              for r in hub.get("/v1/audit", tool="create_entities").json()}
    before, after = remote["before-binding"], remote["after-binding"]
    # Made before Ana signed in: unverified, as the record says, and filed under the person
    # the device is bound to by the time the hub holds it.
    assert (before["user"], before["user_verified"], before["os_user"]) == ("ana@example.com", False, OS_USER)
    assert (after["user"], after["user_verified"], after["os_user"]) == ("ana@example.com", True, OS_USER)
    # The binding was recorded beside the calls, and the hub's alerts hold nothing.
    assert any(r["rule"] == "identity" and "ana@example.com" in r["reason"] for r in gw.audit())
    assert hub.alerts() == []


async def test_a_denied_device_is_not_enrolled_and_the_browser_goes_back_to_the_loopback(make_gateway, tmp_path,
                                                                                         signed_in_hub):
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    # A display that cannot open a browser: the CLI prints the address, and still listens
    # on its loopback for the browser's return.
    enrolling = Enrolling(gw, hub.url, "--name", "stranger", env={"DISPLAY": ":77"})
    address = enrolling.address()
    browser = person("ivan@example.com")
    page = confirm_page(browser, address, hub.url)
    # An answer from another site is refused and changes nothing.
    form = Form()
    form.feed(page.text)
    forged = browser.post(f"{hub.url}/enroll/confirm", data={"confirm": form.fields["confirm"], "decision": "approve"},
                          headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403
    done = answer(browser, page, hub.url, "deny")
    assert done.status_code == 303 and re.fullmatch(r"http://127\.0\.0\.1:\d+/countersign/enrolled",
                                                    done.headers["location"])
    back = httpx.get(done.headers["location"])
    assert back.status_code == 200 and "has your answer" in back.text
    code, _, err = enrolling.finish()
    assert code != 0 and "denied this device" in err
    assert not (gw.home / "hub.json").exists()
    # The confirmation was used once.
    again = answer(browser, page, hub.url, "approve")
    assert again.status_code == 404
    devices = hub.get("/v1/devices").json()
    assert devices == []


def raw_device(hub, email: str) -> str:
    """A device enrolled by sign-in through the hub's API alone; its credential."""
    asked = httpx.post(f"{hub.url}/v1/enroll/device_authorization", json={"name": "raw", "os_user": "raw"}).json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": asked["device_code"]}
    pending = httpx.post(f"{hub.url}/v1/enroll/token", json=poll)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    # Asking again at once is too fast.
    assert httpx.post(f"{hub.url}/v1/enroll/token", json=poll).json()["error"] == "slow_down"
    browser = person(email)
    answer(browser, confirm_page(browser, asked["verification_uri_complete"], hub.url), hub.url, "approve")
    granted = httpx.post(f"{hub.url}/v1/enroll/token", json=poll)
    assert granted.status_code == 200, granted.text
    assert granted.json()["user"] == email
    used = httpx.post(f"{hub.url}/v1/enroll/token", json=poll)
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"
    return granted.json()["credential"]


def record(device: str, user: str, verified: bool, seq: int = 1) -> dict:
    return {"seq": seq, "id": str(uuid.uuid4()), "time": "2026-12-02T00:00:00Z", "kind": "call", "user": user,
            "device": device, "decision": "allow", "user_verified": "true" if verified else "false",
            "os_user": "raw", **{k: None for k in ["client", "client_name", "client_version", "session", "server",
                                                   "tool", "method", "arguments", "rule", "reason", "approval",
                                                   "policy_version", "class", "label", "prev_hash", "hash"]}}


def test_the_hub_refuses_a_batch_naming_another_person_or_another_device(signed_in_hub):
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    ana = raw_device(hub, "ana@example.com")

    def send(credential: str, *records: dict) -> httpx.Response:
        return httpx.post(f"{hub.url}/v1/ingest", json={"records": list(records), "outcomes": []},
                          headers={"Authorization": f"Bearer {credential}"})

    assert send(ana, record("ana-device", "ana@example.com", True)).status_code == 200
    # Nora's device claims to be Ana, verified: refused whole, nothing stored, an alert.
    forged = send(nora, record("nora-device", "nora@example.com", True),
                  record("nora-device", "ana@example.com", True, seq=2))
    assert forged.status_code == 422 and "ana@example.com" in forged.json()["error"]
    # Or claims Ana's device id.
    other = send(nora, record("ana-device", "nora@example.com", True))
    assert other.status_code == 422 and "another enrolled device" in other.json()["error"]
    users = [r["user"] for r in hub.get("/v1/audit").json()]
    assert users == ["ana@example.com"]
    alerts = [a for a in hub.alerts() if a["kind"] == "identity"]
    assert len(alerts) == 2
    # Its own records, named as itself, are taken.
    assert send(nora, record("nora-device", "nora@example.com", True)).status_code == 200
    # An unverified record is stored as the device's account, unverified.
    raw_unverified = send(nora, record("nora-device", "raw", False, seq=2))
    assert raw_unverified.status_code == 200
