"""Issue 18: one sign-on for upstream servers (the MCP extension for enterprise-managed
authorization, ID-JAG), with real parts: the OpenID provider of fixtures/oidc/provider.mjs
(npm oidc-provider, with the token exchange grant the fixture registers: ID token in, an
ID-JAG signed with the provider's published key out, for the (server, authorization
server) pairs the company allows and people in `staff`), and remote MCP servers whose
authorization servers are the Python MCP SDK's own taking the JWT bearer grant
(tests/e2e/oauth_server.py --enterprise: the ID-JAG's signature, typ, iss, aud,
client_id, resource and jti checked).

The person signs in to the IdP once, in the browser; every other server is reached
without a browser or a consent screen; server tokens and the IdP sign-in itself (its
refresh token) are renewed silently; a pair the IdP does
not allow is refused there; no token is in any file, log or record."""

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest

from conftest import BIN, HERE, NODE_BIN, ROOT, Gateway, background, connect, text_of, wait_for, write_config
from test_hub_sign_in import browse, free_port, person

pytestmark = pytest.mark.anyio

PROVIDER = ROOT / "fixtures" / "oidc" / "provider.mjs"
GATEWAY_CLIENT = "countersign-gateway"


class Resource:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"
        self.issuer = httpx.get(f"{self.base}/.well-known/oauth-authorization-server").json()["issuer"]

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/test/stats").json()


@pytest.fixture
def company(tmp_path):
    """An IdP and three MCP servers: `a` (tokens of 5 s) and `b` paired with their
    authorization servers at the IdP, `c` not paired."""
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    as_secret = "as-secret-" + uuid.uuid4().hex
    contexts, resources = [], {}
    for name, expires in (("a", "5"), ("b", "3600"), ("c", "3600")):
        ctx = background(lambda port: [sys.executable, str(HERE / "oauth_server.py"), str(port), "--expires-in",
                                       expires, "--enterprise", issuer, "--client-id", GATEWAY_CLIENT,
                                       "--client-secret", as_secret], tmp_path / f"as-{name}.log")
        served = ctx.__enter__()
        contexts.append(ctx)
        resources[name] = Resource(served.port)
    hub_secret = tmp_path / "hub-secret"
    hub_secret.write_text("hub-secret\n")
    gw_secret = tmp_path / "gateway-secret"
    gw_secret.write_text("gw-idp-secret-" + uuid.uuid4().hex + "\n")
    log = open(tmp_path / "provider.log", "wb")
    pairs = [f"--ema-pair={r.url}={r.issuer}" for n, r in resources.items() if n != "c"]
    provider = subprocess.Popen([str(NODE_BIN / "node"), str(PROVIDER), "--port", str(idp_port),
                                 "--client-secret-file", str(hub_secret), "--redirect", "http://127.0.0.1:1/cb",
                                 "--gateway-secret-file", str(gw_secret), "--ema-group", "staff",
                                 # ID tokens of 60 s: the gateway must renew the IdP sign-in (with its
                                 # refresh token) before every exchange, silently.
                                 "--id-token-ttl", "60", *pairs],
                                stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: "OIDC provider on" in (tmp_path / "provider.log").read_text() or provider.poll() is not None,
             timeout=60, what="the OpenID provider")
    assert provider.poll() is None, (tmp_path / "provider.log").read_text()

    class Company:
        pass

    c = Company()
    c.issuer, c.resources, c.as_secret, c.gw_secret = issuer, resources, as_secret, gw_secret.read_text().strip()
    c.log = tmp_path / "provider.log"
    try:
        yield c
    finally:
        provider.kill()
        provider.wait(10)
        log.close()
        for ctx in contexts:
            ctx.__exit__(None, None, None)


@pytest.fixture
def enterprise_gw(tmp_path, company):
    """A gateway with the company's three servers; signed out of them, its secrets removed
    and stopped when the test ends (the keychain outlives the test)."""
    gw, names = enterprise_gateway(tmp_path, company)
    try:
        yield gw, names
    finally:
        for n in names.values():
            gw.cli("auth", "logout", n, check=False)
        for s in gw.secrets:
            gw.cli("secret", "rm", s, check=False)
        gw.stop()


def enterprise_gateway(tmp_path, company) -> tuple[Gateway, dict]:
    tag = uuid.uuid4().hex[:8]
    names = {n: f"ema-{n}-{tag}" for n in company.resources}
    servers = {names[n]: {"url": r.url, "oauth": {"enterprise": True, "client_secret": {"secret": f"as-{tag}"}}}
               for n, r in company.resources.items()}
    config = write_config(tmp_path / "countersign.toml", servers, policy={"allow": [f"mcp__{v}" for v in names.values()]})
    with open(config, "a") as f:
        f.write(f'[identity_provider]\nissuer = "{company.issuer}"\nclient_id = "{GATEWAY_CLIENT}"\n'
                f'client_secret = {{ secret = "idp-{tag}" }}\n')
    gw = Gateway(tmp_path, config)
    gw.cli("secret", "set", f"as-{tag}", input=company.as_secret + "\n")
    gw.cli("secret", "set", f"idp-{tag}", input=company.gw_secret + "\n")
    gw.secrets = [f"as-{tag}", f"idp-{tag}"]
    return gw.start(), names


def sign_in_once(gw, server: str, email: str) -> tuple[int, str, str]:
    """`countersign auth login SERVER --no-browser`, the person playing the browser at the IdP."""
    proc = subprocess.Popen([str(BIN), "auth", "login", server, "--config", str(gw.config), "--no-browser"],
                            env=gw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    while line and not line.startswith("http"):
        line = proc.stdout.readline()
    url = line.strip()
    assert url, proc.stderr.read()
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    answer = browse(person(email), url, redirect)
    assert answer.status_code == 200, answer.text
    out, err = proc.communicate(timeout=60)
    return proc.returncode, line + out, err


async def whoami(gw, server: str):
    async with connect(gw, "http", server) as client:
        return await client.call_tool("whoami", {})


async def test_one_sign_in_reaches_every_allowed_server_with_no_consent_and_renews_silently(tmp_path, company,
                                                                                            enterprise_gw):
    gw, names = enterprise_gw
    code, out, err = sign_in_once(gw, names["a"], "ana@example.com")
    assert code == 0, err
    assert "Signed in to the identity provider" in out and "ana@example.com" in out
    assert f"Signed in to `{names['a']}` with your company sign-in" in out
    # The ID token lasts 60 s: the IdP sign-in was renewed with its refresh token, no browser.
    assert f"grant refresh_token for {GATEWAY_CLIENT}" in company.log.read_text()
    # The second server: no browser, no consent, no authorization request at its server.
    second = gw.cli("auth", "login", names["b"], "--config", str(gw.config))
    assert "Open this address" not in second.stdout and "with your company sign-in" in second.stdout
    b = company.resources["b"].stats()
    assert b["authorizations"] == 0 and b["jwt_bearer"] == 1
    # Calls go through the gateway with the exchanged tokens.
    for n in ("a", "b"):
        r = await whoami(gw, names[n])
        assert not r.is_error and text_of(r) == "signed in", text_of(r)
    # `a`'s tokens last 5 s: each is renewed from the IdP sign-in, with no browser.
    before = company.resources["a"].stats()["jwt_bearer"]
    r = await whoami(gw, names["a"])
    assert not r.is_error
    assert company.resources["a"].stats()["jwt_bearer"] > before
    # Only the servers' own access tokens reach the MCP endpoints: never an ID token
    # or an ID-JAG (JWTs), never a client's.
    for n in ("a", "b"):
        seen = company.resources[n].stats()["bearers_seen"]
        assert seen and all(re.fullmatch(r"Bearer at_[\w-]+", s) for s in seen), seen
    # A pair the IdP does not allow is refused there: no token, a clear message.
    refused = gw.cli("auth", "login", names["c"], "--config", str(gw.config), check=False)
    assert refused.returncode != 0 and "identity provider" in refused.stderr and "refused" in refused.stderr
    assert company.resources["c"].stats()["jwt_bearer"] == 0
    status = {s["server"]: s for s in json.loads(gw.cli("auth", "status", "--config", str(gw.config), "--json").stdout)}
    assert status[names["b"]]["credentials"]["state"] == "signed_in"
    # No token in any file, log or record of the gateway's.
    tokens = [t for n in ("a", "b") for t in company.resources[n].stats()["issued"]]
    files = [f for f in tmp_path.rglob("*") if f.is_file() and not f.name.startswith("as-")
             and f.name != "provider.log"]
    for f in files:
        data = f.read_bytes()
        assert not any(t.encode() in data for t in tokens), f"an access token in {f}"
        assert b"eyJ" not in data, f"a JWT (an ID token or ID-JAG) in {f}"
    records = json.dumps(gw.audit())
    assert not any(t in records for t in tokens) and "eyJ" not in records


async def test_a_person_the_idp_does_not_allow_gets_no_token(company, enterprise_gw):
    gw, names = enterprise_gw
    # Pia is not in `staff`: the IdP refuses the exchange; the server never sees a grant.
    code, out, err = sign_in_once(gw, names["b"], "pia@example.com")
    assert code != 0 and "identity provider" in err and "access_denied" in err, err
    assert company.resources["b"].stats()["jwt_bearer"] == 0
    # Through the gateway too: the call fails, and no token reaches the server.
    try:
        r = await whoami(gw, names["b"])
        assert r.is_error, text_of(r)
    except Exception:  # noqa: BLE001 - the session may fail to open instead
        pass
    stats = company.resources["b"].stats()
    assert stats["jwt_bearer"] == 0 and stats["calls"] == 0
    assert not [s for s in stats["bearers_seen"] if s.startswith("Bearer at_")]
