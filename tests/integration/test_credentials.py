"""Credentials as Nango has them: OAuth2 token refresh (single flight,
failure marking), the OAUTH2_CC grant, template functions and optional
variables, the /proxy API, and the import shapes of POST /connections. A
fake provider on 127.0.0.1 plays both the token endpoint and the API."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import urllib.parse

from harness import NANGO_CLIENT_DIR, SECRET, DaemonTest


PROVIDERS = """
local-oauth:
    display_name: Local OAuth2 API
    auth_mode: OAUTH2
    token_url: http://127.0.0.1:${connectionConfig.port}/oauth/token
    refresh_params:
        grant_type: refresh_token
        audience: local
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-oauth-json:
    display_name: Local OAuth2 API whose token endpoint takes JSON
    auth_mode: OAUTH2
    token_url: http://127.0.0.1:${connectionConfig.port}/oauth/token
    refresh_url: http://127.0.0.1:${connectionConfig.port}/oauth/refresh
    body_format: json
    authorization_method: header
    token_params:
        grant_type: authorization_code
        scope: all
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-cc:
    display_name: Local client credentials API
    auth_mode: OAUTH2_CC
    token_url: http://127.0.0.1:${connectionConfig.port}/oauth/cc
    token_request_auth_method: basic
    token_params:
        grant_type: client_credentials
        scope: read
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-key:
    display_name: Local API key API
    auth_mode: API_KEY
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            x-api-key: ${apiKey}
            x-tenant: ${connectionConfig.tenant}
local-basic:
    display_name: Local basic API
    auth_mode: BASIC
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            authorization: Basic ${base64(${credentials.username}:${credentials.password})}
local-verified:
    display_name: Local API that checks keys on import
    auth_mode: API_KEY
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            x-api-key: ${apiKey}
        verification:
            method: POST
            endpoints:
                - /nope
                - /verify
            headers:
                content-type: application/json
            data:
                probe: true
                n: 1
local-tba:
    display_name: Local NetSuite-like API (TBA)
    auth_mode: TBA
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-oauth1:
    display_name: Local OAuth 1.0a API (PLAINTEXT)
    auth_mode: OAUTH1
    signature_method: PLAINTEXT
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-oauth1-sha1:
    display_name: Local OAuth 1.0a API (HMAC-SHA1)
    auth_mode: OAUTH1
    signature_method: HMAC-SHA1
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
local-aws:
    display_name: Local API signed with AWS SigV4
    auth_mode: BASIC
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            authorization: ${awsSigV4(${credentials.username}, ${credentials.password}, ${connectionConfig.region}, iam)}
            x-amz-date: ${now:YYYYMMDDTHHmmss[Z]}
"""

NANGO = """
integrations:
    oauth-it:
        provider: local-oauth
    cc-it:
        provider: local-cc
    key-it:
        provider: local-key
    basic-it:
        provider: local-basic
    aws-it:
        provider: local-aws
    verified-it:
        provider: local-verified
    tba-it:
        provider: local-tba
    oauth1-it:
        provider: local-oauth1
    sha1-it:
        provider: local-oauth1-sha1
    oauth-json:
        provider: local-oauth-json
    oauth-script:
        provider: local-oauth
        on-events:
            post-connection-creation: [caller]
"""

CLIENT_SECRET = "s3cret-from-env"
PAST = "2020-01-01T00:00:00.000Z"


def form(record):
    return dict(urllib.parse.parse_qsl(record["body"].decode()))


class CredentialsTest(DaemonTest):
    def start(self, **settings):
        d = self.daemon(NANGO, start=False, settings=dict(settings), test_plugins=["caller"])
        path = os.path.join(d.dir, "providers.yaml")
        with open(path, "w") as f:
            f.write(PROVIDERS)
        d.settings.update({"providers": path, "environment": {"CALLER_PATH": "/me"},
                           "oauth_clients": {"oauth-it": {"client_id": "cid-1",
                                                          "client_secret_env": "OAUTH_IT_SECRET"},
                                             "oauth-script": {"client_id": "cid-2", "client_secret": "s2"},
                                             "oauth-json": {"client_id": "cid-3", "client_secret": "s3"},
                                             "oauth1-it": {"client_id": "consumer-1",
                                                           "client_secret": "consumer&secret"}}})
        d.write_config()
        d.start(extra_env={"OAUTH_IT_SECRET": CLIENT_SECRET,
                           "EVSCRIPT_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()})
        self.port = self.provider.port
        self.provider.route("GET", "/me", lambda r: {"status": 200, "body": {"seen": r["headers"]}})
        self.provider.route("POST", "/items", lambda r: {"status": 201, "headers": {"X-Item": "7"},
                                                         "body": {"got": r["body"].decode()}})
        for method in ("PUT", "PATCH", "DELETE"):
            self.provider.route(method, "/items/1", lambda r: {"status": 200,
                                                               "body": {"method": r["method"],
                                                                        "got": r["body"].decode()}})
        self.provider.route("GET", "/v2/me", {"status": 200, "body": {"v": 2}})
        return d

    def oauth(self, d, cid, expires_at=PAST, refresh_token="r1"):
        creds = {"type": "OAUTH2", "access_token": "old-token", "expires_at": expires_at}
        if refresh_token:
            creds["refresh_token"] = refresh_token
        status, _, doc = d.create_connection("oauth-it", cid, creds, connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)

    def proxy(self, d, cid, pck, path="/me", method="GET", headers=None, body=None):
        h = {"Connection-Id": cid, "Provider-Config-Key": pck}
        h.update(headers or {})
        return d.request(method, "/proxy" + path, body=body, headers=h)

    def token_route(self, *tokens, delay=0, path="/oauth/token"):
        def answer(record, it=iter(tokens)):
            return {"status": 200, "delay": delay,
                    "body": {"access_token": next(it), "refresh_token": "r2", "expires_in": 3600,
                             "token_type": "bearer"}}
        self.provider.route("POST", path, answer)

    def test_expired_token_is_refreshed_before_use(self):
        d = self.start()
        self.token_route("new-1")
        self.oauth(d, "c1")
        status, _, doc = self.proxy(d, "c1", "oauth-it")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["seen"]["authorization"], "Bearer new-1")
        self.assertIn("credentials: oauth-it/c1: access token refreshed", d.logs())
        [grant] = self.provider.received("POST", "/oauth/token")
        self.assertEqual(form(grant), {"grant_type": "refresh_token", "refresh_token": "r1",
                                       "client_id": "cid-1", "client_secret": CLIENT_SECRET,
                                       "audience": "local"})
        status, _, conn = d.request("GET", "/connections/c1?provider_config_key=oauth-it&refresh_token=true")
        self.assertEqual(status, 200, conn)
        self.assertEqual(conn["credentials"]["access_token"], "new-1")
        self.assertEqual(conn["credentials"]["refresh_token"], "r2")
        self.assertGreater(conn["credentials"]["expires_at"], "2026")
        self.assertEqual(conn["errors"], [])
        # fresh now: a second call does not refresh again; force_refresh does
        self.proxy(d, "c1", "oauth-it")
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), 1)
        self.token_route("new-2")
        status, _, conn = d.request("GET", "/connections/c1?provider_config_key=oauth-it&force_refresh=true")
        self.assertEqual(conn["credentials"]["access_token"], "new-2")
        self.assertEqual(form(self.provider.received("POST", "/oauth/token")[-1])["refresh_token"], "r2")
        # the refreshed tokens are sealed in the store like every credential
        d.stop()
        stored = b"".join(open(os.path.join(d.dir, f), "rb").read()
                          for f in os.listdir(d.dir) if f.startswith("evscript.db"))
        for secret in (b"new-1", b"new-2", b"r2", CLIENT_SECRET.encode()):
            self.assertNotIn(secret, stored)

    def test_script_proxy_refreshes_in_the_executor_path(self):
        """A script's proxy() (an isolated executor: the daemon serves its
        call) uses the refreshed token; a failed refresh fails the call with
        the reason in the execution's log."""
        d = self.start()
        self.token_route("script-new")
        status, _, doc = d.create_connection("oauth-script", "s1", {
            "type": "OAUTH2", "access_token": "old", "refresh_token": "r1", "expires_at": PAST},
            connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)
        [ex] = d.wait_executions(1, connection_id="s1")
        self.assertEqual(ex["status"], "succeeded", ex)
        meta = d.request("GET", "/connections/s1?provider_config_key=oauth-script")[2]["metadata"]
        self.assertEqual(json.loads(meta["call"]["body"])["seen"]["authorization"], "Bearer script-new")
        self.assertEqual(form(self.provider.received("POST", "/oauth/token")[0])["client_id"], "cid-2")
        self.provider.route("POST", "/oauth/token", {"status": 401, "body": {"error": "invalid_client"}})
        d.create_connection("oauth-script", "s2", {"type": "OAUTH2", "access_token": "old", "refresh_token": "r1",
                                                   "expires_at": PAST}, connection_config={"port": self.port})
        [ex] = d.wait_executions(1, connection_id="s2")
        self.assertEqual(ex["status"], "failed", ex)
        logs = " ".join(line["message"] for line in d.execution(ex["id"])["logs"])
        self.assertIn("credentials: the token endpoint answered 401 (invalid_client)", logs)

    def test_refresh_json_body_and_client_in_header(self):
        """refresh_url, body_format: json and authorization_method: header;
        token_params stand in for refresh_params (Nango's rule), their
        grant_type too."""
        d = self.start()
        self.token_route("json-1", path="/oauth/refresh")
        status, _, doc = d.create_connection("oauth-json", "j1", {
            "type": "OAUTH2", "access_token": "old", "refresh_token": "r1", "expires_at": PAST,
            "config_override": {"client_id": "only-id"}}, connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)
        self.assertEqual(self.proxy(d, "j1", "oauth-json")[2]["seen"]["authorization"], "Bearer json-1")
        [grant] = self.provider.received("POST", "/oauth/refresh")
        self.assertEqual(self.provider.received("POST", "/oauth/token"), [])
        self.assertEqual(grant["headers"]["content-type"], "application/json")
        self.assertEqual(json.loads(grant["body"]), {"refresh_token": "r1", "grant_type": "authorization_code",
                                                     "scope": "all"})
        # a config_override without a secret is not used: the oauth_clients entry is
        self.assertEqual(grant["headers"]["authorization"], "Basic " + base64.b64encode(b"cid-3:s3").decode())

    def test_refresh_failure_marks_the_connection(self):
        d = self.start()
        self.provider.route("POST", "/oauth/token", {"status": 400, "body": {"error": "invalid_grant"}})
        self.oauth(d, "c2")
        status, _, doc = self.proxy(d, "c2", "oauth-it")
        self.assertEqual(status, 424, doc)
        self.assertEqual(doc["error"]["code"], "refresh_token_external_error")
        self.assertIn("invalid_grant", doc["error"]["message"])
        self.assertEqual(self.provider.received("GET", "/me"), [])
        self.assertIn("credentials: oauth-it/c2: the token endpoint answered 400 (invalid_grant)", d.logs())
        status, _, conn = d.request("GET", "/connections/c2?provider_config_key=oauth-it")
        self.assertEqual(status, 200, conn)
        self.assertEqual(conn["errors"][0]["type"], "auth")
        self.assertIn("answered 400 (invalid_grant)", conn["errors"][0]["message"])
        self.assertNotIn("refresh_error", conn["credentials"])
        status, _, doc = d.request("GET", "/connections/c2?provider_config_key=oauth-it&force_refresh=true")
        self.assertEqual(status, 424, doc)
        # no refresh_token: a clear refusal, not a request to the provider
        self.oauth(d, "c3", refresh_token=None)
        before = len(self.provider.received("POST", "/oauth/token"))
        status, _, doc = self.proxy(d, "c3", "oauth-it")
        self.assertEqual(status, 424, doc)
        self.assertIn("no refresh_token", doc["error"]["message"])
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), before)
        self.assertIsNone(d.proc.poll())  # the daemon is still up

    def test_concurrent_users_share_one_refresh(self):
        d = self.start()
        self.token_route("shared-1", "shared-2", "shared-3", delay=0.3)
        self.oauth(d, "c4")
        results = []

        def use(i):
            if i % 2:
                results.append(self.proxy(d, "c4", "oauth-it")[2]["seen"]["authorization"])
            else:
                doc = d.request("GET", "/connections/c4?provider_config_key=oauth-it")[2]
                results.append("Bearer " + doc["credentials"]["access_token"])
        threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), 1)
        self.assertEqual(results, ["Bearer shared-1"] * 8)

    def test_concurrent_users_share_one_failure(self):
        d = self.start()
        self.provider.route("POST", "/oauth/token", {"status": 400, "delay": 1.0,
                                                     "body": {"error": "invalid_grant"}})
        self.oauth(d, "c5")
        statuses = []

        def use():
            statuses.append(self.proxy(d, "c5", "oauth-it")[0])
        threads = [threading.Thread(target=use) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [424] * 6)
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), 1)
        # a later call (not waiting on that one) asks again
        self.proxy(d, "c5", "oauth-it")
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), 2)

    def test_client_credentials(self):
        d = self.start()
        self.provider.route("POST", "/oauth/cc", {"status": 200, "body": {"access_token": "cc-1",
                                                                          "expires_in": 3600}})
        status, _, doc = d.create_connection("cc-it", "cc1", {"type": "OAUTH2_CC", "token": "stale",
                                                              "client_id": "app", "client_secret": "pw",
                                                              "expires_at": PAST},
                                             connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)
        for _ in range(2):
            status, _, doc = self.proxy(d, "cc1", "cc-it")
            self.assertEqual(doc["seen"]["authorization"], "Bearer cc-1")
        [grant] = self.provider.received("POST", "/oauth/cc")  # cached until it expires
        self.assertEqual(form(grant), {"grant_type": "client_credentials", "scope": "read"})
        self.assertEqual(grant["headers"]["authorization"], "Basic " + base64.b64encode(b"app:pw").decode())
        status, _, conn = d.request("GET", "/connections/cc1?provider_config_key=cc-it")
        self.assertEqual(conn["credentials"]["token"], "cc-1")

    def test_templates_optional_header_and_base64(self):
        d = self.start()
        d.create_connection("key-it", "k1", {"type": "API_KEY", "apiKey": "key-123"},
                            connection_config={"port": self.port})
        status, _, doc = self.proxy(d, "k1", "key-it")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["seen"]["x-api-key"], "key-123")
        self.assertNotIn("x-tenant", doc["seen"])  # ${connectionConfig.tenant} unset: left out
        d.create_connection("key-it", "k2", {"type": "API_KEY", "apiKey": "key-456"},
                            connection_config={"port": self.port, "tenant": "acme"})
        self.assertEqual(self.proxy(d, "k2", "key-it")[2]["seen"]["x-tenant"], "acme")
        # a header named like the provider's auth header replaces it (Nango-Proxy- prefix: forwarded)
        doc = self.proxy(d, "k2", "key-it", headers={"Nango-Proxy-X-Api-Key": "mine"})[2]
        self.assertEqual(doc["seen"]["x-api-key"], "mine")
        d.create_connection("basic-it", "b1", {"type": "BASIC", "username": "ann", "password": "pw:1"},
                            connection_config={"port": self.port})
        doc = self.proxy(d, "b1", "basic-it")[2]
        self.assertEqual(doc["seen"]["authorization"], "Basic " + base64.b64encode(b"ann:pw:1").decode())

    def test_aws_sigv4_signed_by_curl(self):
        """${awsSigV4(...)} headers: libcurl signs each request; the signature
        is checked here against AWS's Signature Version 4 algorithm."""
        d = self.start()
        secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        d.create_connection("aws-it", "a1", {"type": "BASIC", "username": "AKIDEXAMPLE", "password": secret},
                            connection_config={"port": self.port, "region": "eu-west-3"})
        status, _, doc = self.proxy(d, "a1", "aws-it", path="/items", method="POST", body={"Action": "ListUsers"})
        self.assertEqual(status, 201, doc)
        rec = self.provider.received("POST", "/items")[-1]
        auth = rec["headers"]["authorization"]
        algo, _, rest = auth.partition(" ")
        self.assertEqual(algo, "AWS4-HMAC-SHA256")
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        key_id, day, region, service, term = parts["Credential"].split("/")
        self.assertEqual((key_id, region, service, term), ("AKIDEXAMPLE", "eu-west-3", "iam", "aws4_request"))
        amz_date = rec["headers"]["x-amz-date"]
        self.assertEqual(amz_date[:8], day)
        signed = parts["SignedHeaders"].split(";")
        self.assertIn("x-amz-date", signed)
        self.assertIn("host", signed)
        canonical = "\n".join(["POST", "/items", "",
                               "".join(f"{h}:{rec['headers'][h].strip()}\n" for h in signed),
                               parts["SignedHeaders"], hashlib.sha256(rec["body"]).hexdigest()])
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self.assertEqual(parts["Signature"], hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest())
        self.assertNotIn(secret, d.logs())

    def test_verification_on_import(self):
        d = self.start()
        self.provider.route("POST", "/verify", lambda r: {"status": 200 if r["headers"]["x-api-key"] == "good"
                                                          else 401, "body": {}})
        status, _, doc = d.create_connection("verified-it", "v1", {"type": "API_KEY", "apiKey": "bad"},
                                             connection_config={"port": self.port})
        self.assertEqual((status, doc["error"]["code"]), (400, "connection_test_failed"), doc)
        self.assertIn("POST /verify answered 401", doc["error"]["message"])
        self.assertEqual(d.request("GET", "/connections/v1?provider_config_key=verified-it")[0], 404)
        status, _, doc = d.create_connection("verified-it", "v1", {"type": "API_KEY", "apiKey": "good"},
                                             connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)
        tries = self.provider.received("POST", "/verify")
        self.assertEqual(len(self.provider.received("POST", "/nope")), 2)  # each endpoint, in order
        self.assertEqual(json.loads(tries[-1]["body"]), {"probe": True, "n": 1})
        self.assertEqual(tries[-1]["headers"]["content-type"], "application/json")

    def test_tba_and_oauth1_signatures(self):
        """TBA: OAuth 1.0a with HMAC-SHA256, checked here with RFC 5849's
        algorithm; OAUTH1 PLAINTEXT; OAUTH1 HMAC-SHA1 refused at import."""
        d = self.start()
        status, _, doc = d.create_connection("tba-it", "t1", {
            "type": "TBA", "token_id": "tok en", "token_secret": "t/secret",
            "config_override": {"client_id": "ck", "client_secret": "c+secret"}},
            connection_config={"port": self.port, "accountId": "1234567-sb1"})
        self.assertEqual(status, 201, doc)
        status, _, doc = self.proxy(d, "t1", "tba-it", path="/me?q=a%20b&x=1")
        self.assertEqual(status, 200, doc)
        auth = doc["seen"]["authorization"]
        self.assertTrue(auth.startswith('OAuth realm="1234567_SB1",'), auth)
        fields = {k: urllib.parse.unquote(v.strip('"'))
                  for k, v in (p.split("=", 1) for p in auth[len("OAuth "):].split(","))}
        self.assertEqual((fields["oauth_consumer_key"], fields["oauth_token"], fields["oauth_signature_method"]),
                         ("ck", "tok en", "HMAC-SHA256"))
        q = urllib.parse.quote
        params = [(q(k, safe="~"), q(v, safe="~")) for k, v in
                  [("q", "a b"), ("x", "1")] + [(k, v) for k, v in fields.items()
                                                if k.startswith("oauth_") and k != "oauth_signature"]]
        norm = "&".join(f"{k}={v}" for k, v in sorted(params))
        base = "&".join(["GET", q(f"http://127.0.0.1:{self.port}/me", safe="~"), q(norm, safe="~")])
        key = q("c+secret", safe="~") + "&" + q("t/secret", safe="~")
        want = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
        self.assertEqual(fields["oauth_signature"], want)
        # OAUTH1 PLAINTEXT with the client from oauth_clients
        status, _, doc = d.create_connection("oauth1-it", "o1", {"type": "OAUTH1", "oauth_token": "ot",
                                                                 "oauth_token_secret": "ots"},
                                             connection_config={"port": self.port})
        self.assertEqual(status, 201, doc)
        status, _, doc = self.proxy(d, "o1", "oauth1-it")
        self.assertEqual(status, 200, doc)
        auth = doc["seen"]["authorization"]
        self.assertIn('oauth_signature_method="PLAINTEXT"', auth)
        self.assertIn('oauth_signature="' + q(q("consumer&secret", safe="~") + "&ots", safe="~") + '"', auth)
        status, _, doc = d.create_connection("sha1-it", "o2", {"type": "OAUTH1", "oauth_token": "ot",
                                                               "oauth_token_secret": "ots"})
        self.assertEqual(status, 422, doc)
        self.assertIn("signature method HMAC-SHA1 is not supported", doc["error"]["message"])

    def test_proxy_api_forwards_and_answers(self):
        d = self.start()
        d.create_connection("key-it", "k3", {"type": "API_KEY", "apiKey": "key-789"},
                            connection_config={"port": self.port})
        status, hdrs, doc = self.proxy(d, "k3", "key-it", path="/items?a=1&b=two%20words", method="POST",
                                       body={"x": 1}, headers={"Nango-Proxy-X-Custom": "yes"})
        self.assertEqual(status, 201, doc)
        self.assertEqual(hdrs.get("X-Item"), "7")
        self.assertEqual(doc, {"got": '{"x": 1}'})
        rec = self.provider.received("POST", "/items")[-1]
        self.assertEqual(rec["query"], {"a": "1", "b": "two words"})
        self.assertEqual(rec["headers"]["x-custom"], "yes")
        self.assertNotIn(SECRET, str(rec["headers"]))  # the caller's own Authorization stays here
        self.provider.route("GET", "/flaky", {"status": 409}, {"status": 200, "body": {"ok": 1}})
        status, _, doc = self.proxy(d, "k3", "key-it", path="/flaky", headers={"Retries": "2", "Retry-On": "409"})
        self.assertEqual((status, doc), (200, {"ok": 1}))
        for headers, code in (({"Connection-Id": ""}, "missing_connection_id"),
                              ({"Retries": "x"}, "invalid_headers")):
            status, _, doc = self.proxy(d, "k3", "key-it", headers=headers)
            self.assertEqual((status, doc["error"]["code"]), (400, code))
        status, _, doc = self.proxy(d, "nope", "key-it")
        self.assertEqual((status, doc["error"]["code"]), (404, "unknown_connection"))

    def test_base_url_override_setting(self):
        d = self.start(proxy_base_url_override=False)
        d.create_connection("key-it", "k4", {"type": "API_KEY", "apiKey": "key-000"},
                            connection_config={"port": self.port})
        status, _, doc = self.proxy(d, "k4", "key-it",
                                    headers={"Base-Url-Override": f"http://127.0.0.1:{self.port}"})
        self.assertEqual((status, doc["error"]["code"]), (400, "base_url_override_refused"))
        self.assertEqual(self.proxy(d, "k4", "key-it", headers={"Base-Url-Override": ""})[0], 200)

    def test_base_url_override_followed_by_default(self):
        d = self.start()
        d.create_connection("key-it", "k5", {"type": "API_KEY", "apiKey": "key-555"},
                            connection_config={"port": self.port})
        status, _, doc = self.proxy(d, "k5", "key-it",
                                    headers={"Base-Url-Override": f"http://127.0.0.1:{self.port}/v2"})
        self.assertEqual((status, doc), (200, {"v": 2}))
        self.assertEqual(self.provider.received("GET", "/v2/me")[0]["headers"]["x-api-key"], "key-555")

    def test_import_shapes(self):
        d = self.start()
        status, _, doc = d.create_connection("cc-it", "x1", {"type": "OAUTH2_CC", "token": "t", "client_id": "a"})
        self.assertEqual(status, 400, doc)
        self.assertEqual(doc["error"]["message"], "credentials.client_secret: is required")
        status, _, doc = d.create_connection("oauth-it", "x2", {"type": "APP", "app_id": "a",
                                                                "installation_id": "b"})
        self.assertEqual(status, 422, doc)
        self.assertIn("APP cannot be imported: a GitHub App installation token needs a JWT", doc["error"]["message"])
        status, _, doc = d.create_connection("key-it", "x3", {"type": "OAUTH2_CC", "token": "t", "client_id": "a",
                                                              "client_secret": "b"})
        self.assertEqual((status, doc["error"]["code"]), (422, "invalid_credentials_type"))

    def test_official_client(self):
        node = self.nango_client()
        d = self.start()
        self.token_route("client-new-1")
        self.provider.route("POST", "/oauth/cc", {"status": 200, "body": {"access_token": "cc-node",
                                                                          "expires_in": 3600}})
        e = dict(os.environ, EVSCRIPT_URL=d.url, EVSCRIPT_SECRET_KEY=SECRET, EVSCRIPT_PROVIDER_PORT=str(self.port))
        r = subprocess.run([node, "--test", os.path.join(NANGO_CLIENT_DIR, "proxy-client.mjs")], cwd=NANGO_CLIENT_DIR, env=e,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.provider.received("POST", "/oauth/token")), 1)
