"""A remote MCP server that requires OAuth, with its authorization server, for the vault's
end-to-end tests. Both are the Python MCP SDK's own (pinned in fixtures/requirements.txt):
its OAuth 2.1 authorization server routes (metadata, authorize, token with PKCE S256,
dynamic client registration, revocation) and its bearer-protected streamable HTTP server
with protected resource metadata. Only the provider's storage is ours: in memory, approving
every authorization at once (the browser's "Allow" click), with switches for the failure
cases the tests need and a /test/ API to revoke tokens and read counters.

Usage: oauth_server.py PORT [--expires-in SECONDS] [--wrong-audience] [--wrong-iss]
                      [--refresh-audience URL] [--refresh-scope "S1 S2"]
--refresh-audience: a refresh (not the sign-in) returns a JWT-shaped token whose `aud` is
URL, which the MCP endpoint still accepts (so only the client can refuse it).
--refresh-scope: a refresh grants these scopes (narrower than the sign-in's).
--enterprise IDP_ISSUER --client-id ID --client-secret S: the authorization server also
takes the RFC 7523 JWT bearer grant with an ID-JAG from that IdP (the MCP extension for
enterprise-managed authorization; the SDK's `identity_assertion_enabled`), from the
pre-registered confidential client ID: signature against the IdP's published keys,
`typ`, `iss`, `aud` (this server), `client_id`, `resource`, `exp`, `jti` used once.
It is test plumbing, not part of the product."""

import argparse
import base64
import json
import secrets
import time

import uvicorn
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.auth.handlers import revoke as revoke_handler
from mcp.server.mcpserver import MCPServer

# The SDK's revocation request model requires a `client_secret` key even for public
# clients (RFC 7009 with token_endpoint_auth_method "none" sends only client_id); give it
# the default the field's type promises, so public clients can revoke as the RFC says.
revoke_handler.RevocationRequest.model_fields["client_secret"].default = None
revoke_handler.RevocationRequest.model_rebuild(force=True)

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--expires-in", type=int, default=3600)
ap.add_argument("--wrong-audience", action="store_true")
ap.add_argument("--wrong-iss", action="store_true")
ap.add_argument("--refresh-audience")
ap.add_argument("--refresh-scope")
ap.add_argument("--enterprise")
ap.add_argument("--client-id")
ap.add_argument("--client-secret")
args = ap.parse_args()

BASE = f"http://127.0.0.1:{args.port}"
RESOURCE = f"{BASE}/mcp"
STATS = {"bearers_seen": [], "issued": [], "authorizations": 0, "codes_exchanged": 0, "refreshes": 0, "revocations": 0, "calls": 0,
         "resources": [], "authorizations_seen": [], "codes_presented": [], "jwt_bearer": 0,
         "jwt_bearer_refused": []}


def jwt_shaped(aud: str) -> str:
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    claims = {"aud": aud, "iss": BASE, "jti": secrets.token_hex(8)}
    header = enc(json.dumps({"alg": "none"}).encode())
    return f"{header}.{enc(json.dumps(claims).encode())}.{secrets.token_hex(8)}"


class Provider:
    def __init__(self):
        self.clients, self.codes, self.access, self.refresh = {}, {}, {}, {}

    async def get_client(self, client_id):
        return self.clients.get(client_id)

    async def register_client(self, client_info):
        self.clients[client_info.client_id] = client_info

    async def authorize(self, client, params: AuthorizationParams) -> str:
        STATS["authorizations"] += 1
        STATS["resources"].append(params.resource)
        STATS["authorizations_seen"].append({"resource": params.resource, "has_challenge": bool(params.code_challenge)})
        code = secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            code=code, scopes=params.scopes or [], expires_at=time.time() + 300, client_id=client.client_id,
            code_challenge=params.code_challenge, redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly, resource=params.resource,
        )
        iss = "https://evil.example" if args.wrong_iss else BASE
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state, iss=iss)

    async def load_authorization_code(self, client, code):
        STATS["codes_presented"].append(code)  # every code sent to the token endpoint, valid or not
        return self.codes.get(code)

    def _issue(self, client_id, scopes, resource, refresh=False):
        if args.wrong_audience:
            token = jwt_shaped("https://another.example/mcp")
        elif refresh and args.refresh_audience:
            token = jwt_shaped(args.refresh_audience)
        else:
            token = "at_" + secrets.token_urlsafe(24)
        refresh = "rt_" + secrets.token_urlsafe(24)
        STATS["issued"] += [token, refresh]
        self.access[token] = AccessToken(token=token, client_id=client_id, scopes=scopes,
                                         expires_at=int(time.time()) + args.expires_in, resource=resource)
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource)
        from mcp.shared.auth import OAuthToken
        return OAuthToken(access_token=token, token_type="Bearer", expires_in=args.expires_in,
                          refresh_token=refresh, scope=" ".join(scopes) or None)

    async def exchange_authorization_code(self, client, authorization_code):
        self.codes.pop(authorization_code.code, None)
        STATS["codes_exchanged"] += 1
        return self._issue(client.client_id, authorization_code.scopes, authorization_code.resource)

    async def load_refresh_token(self, client, refresh_token):
        return self.refresh.get(refresh_token)

    async def exchange_refresh_token(self, client, refresh_token, scopes):
        self.refresh.pop(refresh_token.token, None)
        STATS["refreshes"] += 1
        if args.refresh_scope:
            scopes = args.refresh_scope.split()
        return self._issue(client.client_id, scopes or refresh_token.scopes, refresh_token.resource, refresh=True)

    async def exchange_identity_assertion(self, client, params):
        import jwt
        from mcp.server.auth.provider import TokenError
        from mcp.shared.auth import OAuthToken

        def refuse(why):
            STATS["jwt_bearer_refused"].append(why)
            raise TokenError("invalid_grant", why)

        try:
            if jwt.get_unverified_header(params.assertion).get("typ") != "oauth-id-jag+jwt":
                refuse("not an ID-JAG (typ)")
            key = jwt.PyJWKClient(f"{args.enterprise}/jwks").get_signing_key_from_jwt(params.assertion).key
            claims = jwt.decode(params.assertion, key, algorithms=["RS256"], audience=[BASE, BASE + "/"],
                                issuer=args.enterprise,
                                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]})
        except TokenError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure is the grant's
            refuse(f"the ID-JAG does not verify: {e}")
        if claims.get("client_id") != client.client_id:
            refuse("the ID-JAG names another client")
        if claims.get("resource") not in (None, RESOURCE):
            refuse("the ID-JAG is for another resource")
        if claims["jti"] in self.seen_jti:
            refuse("the ID-JAG was used before")
        self.seen_jti.add(claims["jti"])
        STATS["jwt_bearer"] += 1
        token = "at_" + secrets.token_urlsafe(24)
        scopes = (claims.get("scope") or "").split()
        STATS["issued"].append(token)
        self.access[token] = AccessToken(token=token, client_id=client.client_id, scopes=scopes,
                                         expires_at=int(time.time()) + args.expires_in, resource=RESOURCE)
        return OAuthToken(access_token=token, token_type="Bearer", expires_in=args.expires_in,
                          scope=" ".join(scopes) or None)

    async def load_access_token(self, token):
        found = self.access.get(token)
        if found and found.expires_at and found.expires_at < time.time():
            return None
        return found

    async def revoke_token(self, token):
        STATS["revocations"] += 1
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)


provider = Provider()
provider.seen_jti = set()
if args.enterprise:
    from mcp.shared.auth import JWT_BEARER_GRANT_TYPE, OAuthClientInformationFull
    provider.clients[args.client_id] = OAuthClientInformationFull(
        client_id=args.client_id, client_secret=args.client_secret, grant_types=[JWT_BEARER_GRANT_TYPE],
        token_endpoint_auth_method="client_secret_post", redirect_uris=None)
server = MCPServer(
    "oauth-protected",
    auth_server_provider=provider,
    auth=AuthSettings(
        issuer_url=BASE,
        resource_server_url=RESOURCE,
        client_registration_options=ClientRegistrationOptions(enabled=True),
        revocation_options=RevocationOptions(enabled=True),
        validate_token_resource=not args.wrong_audience,
        identity_assertion_enabled=bool(args.enterprise),
    ),
)


@server.tool()
def whoami() -> str:
    """Says the caller is signed in."""
    STATS["calls"] += 1
    return "signed in"


@server.custom_route("/test/stats", methods=["GET"])
async def stats(request: Request):
    return JSONResponse({**STATS, "live_access_tokens": len(provider.access), "live_refresh_tokens": len(provider.refresh)})


@server.custom_route("/test/revoke-access", methods=["POST"])
async def revoke_access(request: Request):
    provider.access.clear()
    return JSONResponse({"ok": True})


@server.custom_route("/test/revoke-all", methods=["POST"])
async def revoke_all(request: Request):
    provider.access.clear()
    provider.refresh.clear()
    return JSONResponse({"ok": True})


def recording(app):
    """Records every Authorization header the MCP endpoint receives (to prove that only the
    gateway's own token for this server ever arrives, never a client's)."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    STATS["bearers_seen"].append(value.decode(errors="replace"))
        await app(scope, receive, send)

    return wrapped


uvicorn.run(recording(server.streamable_http_app()), host="127.0.0.1", port=args.port, log_level="warning")
