"""Host functions end to end: the real daemon, real signed test plugins, and a
fake provider API that records what it gets.

Issue 4, "Host functions" and "Tests": auth injection for each credential
type, retries with Retry-After, pagination in each style, metadata written
by a script visible through GET /connections/{id}, get_env limited to the
configured variables, get_webhook_url, and the nesting limit of actions.
"""

import base64
import json
import os
import time
import unittest

from harness import DaemonTest

# Every base URL points at the FakeProvider through connection_config.port.
PROVIDERS = """
fake-oauth:
    display_name: Fake (OAuth2)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        retry:
            after:
                - retry-after
                - x-retry-in
fake-header:
    display_name: Fake (API key in a header)
    auth_mode: API_KEY
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        headers:
            x-api-key: ${apiKey}
            authorization: Token key=${apiKey}
fake-query:
    display_name: Fake (API key in the query)
    auth_mode: API_KEY
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
        query:
            api_key: ${apiKey}
fake-basic:
    display_name: Fake (basic auth)
    auth_mode: BASIC
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
fake-none:
    display_name: Fake (no credentials)
    auth_mode: NONE
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}
pages-cursor:
    display_name: Fake (cursor pages)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}/cursor
        paginate:
            type: cursor
            cursor_path_in_response: meta.next
            cursor_name_in_request: after
            limit_name_in_request: limit
            response_path: data
pages-link:
    display_name: Fake (Link header pages)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}/link
        paginate:
            type: link
            link_rel_in_response_header: next
            limit_name_in_request: per_page
pages-body-link:
    display_name: Fake (next link in the body)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}/bodylink
        paginate:
            type: link
            link_path_in_response_body: links.next
            limit_name_in_request: per_page
            response_path: items
pages-offset:
    display_name: Fake (offset pages)
    auth_mode: OAUTH2
    proxy:
        base_url: http://127.0.0.1:${connectionConfig.port}/offset
        paginate:
            type: offset
            offset_name_in_request: skip
            limit_name_in_request: take
            response_path: results
"""

NANGO = """
integrations:
    a-oauth:
        provider: fake-oauth
        on-events:
            post-connection-creation: [caller]
    a-header:
        provider: fake-header
        on-events:
            post-connection-creation: [caller]
    a-query:
        provider: fake-query
        on-events:
            post-connection-creation: [caller]
    a-basic:
        provider: fake-basic
        on-events:
            post-connection-creation: [caller]
    a-none:
        provider: fake-none
        on-events:
            post-connection-creation: [caller]
    p-cursor:
        provider: pages-cursor
        on-events:
            post-connection-creation: [pager]
    p-link:
        provider: pages-link
        on-events:
            post-connection-creation: [pager]
    p-body-link:
        provider: pages-body-link
        on-events:
            post-connection-creation: [pager]
    p-offset:
        provider: pages-offset
        on-events:
            post-connection-creation: [pager]
    everything:
        provider: fake-header
        on-events:
            post-connection-creation: [callall]
        actions:
            echo:
                description: returns its input
    deep:
        provider: fake-none
        actions:
            recurse:
                description: triggers itself
    deep-inproc:
        provider: fake-none
        execution: in-process
        actions:
            recurse:
                description: triggers itself
"""

TEST_PLUGINS = ["caller", "pager", "callall", "echo", "recurse"]
DEPTH_MAX = 8  # DISPATCH_ACTION_DEPTH_MAX: an HTTP trigger is depth 0

# The credentials of each auth test, and what must never be logged.
SECRETS = {
    "a-oauth": ({"type": "OAUTH2", "access_token": "oauth-secret-token-1"}, ["oauth-secret-token-1"]),
    "a-header": ({"type": "API_KEY", "apiKey": "header-secret-key-2"}, ["header-secret-key-2"]),
    "a-query": ({"type": "API_KEY", "apiKey": "query-secret-key-3"}, ["query-secret-key-3"]),
    "a-basic": ({"type": "BASIC", "username": "basic-user-4", "password": "basic-secret-pass-4"},
                ["basic-secret-pass-4",
                 base64.b64encode(b"basic-user-4:basic-secret-pass-4").decode()]),
    "a-none": ({"type": "NONE"}, []),
}


class HostFunctionsTest(DaemonTest):
    def start(self, environment=None, extra_env=None, **settings):
        settings["environment"] = environment or {}
        d = self.daemon(NANGO, start=False, settings=settings, test_plugins=TEST_PLUGINS)
        path = os.path.join(d.dir, "providers.yaml")
        with open(path, "w") as f:
            f.write(PROVIDERS)
        d.settings["providers"] = path
        d.write_config()
        d.start(extra_env=extra_env)
        return d

    def connect(self, d, integration, connection_id, credentials=None):
        status, _, body = d.request("POST", "/connections", {
            "provider_config_key": integration, "connection_id": connection_id,
            "credentials": credentials or {"type": "OAUTH2", "access_token": "t-" + connection_id},
            "connection_config": {"port": str(self.provider.port)}})
        self.assertEqual(status, 201, body)

    def only(self, d, **filters):
        [ex] = d.wait_executions(1, **filters)
        return ex

    def metadata(self, d, integration, connection_id):
        status, _, body = d.request("GET", f"/connections/{connection_id}?provider_config_key={integration}")
        self.assertEqual(status, 200, body)
        return body["metadata"]

    # -- auth injection ----------------------------------------------------

    def test_auth_injection_for_each_credential_type(self):
        def created(record):
            return {"status": 201, "body": {"id": 42, "got": json.loads(record["body"])}}
        self.provider.route("POST", "/things", created)
        d = self.start(environment={"CALLER_METHOD": "POST", "CALLER_PATH": "/things",
                                    "CALLER_BODY": '{"name":"widget","n":3}'})
        for integration, (credentials, _) in SECRETS.items():
            self.connect(d, integration, "c-" + integration, credentials)
        executions = {}
        for integration in SECRETS:
            ex = self.only(d, connection_id="c-" + integration)
            self.assertEqual((ex["script"], ex["status"]), ("caller", "succeeded"), ex)
            executions[integration] = ex

        reqs = self.provider.received("POST", "/things")
        self.assertEqual(len(reqs), len(SECRETS))
        by_auth = {}
        for r in reqs:
            self.assertEqual(json.loads(r["body"]), {"name": "widget", "n": 3})
            self.assertEqual(r["headers"]["content-type"], "application/json")
            h, q = r["headers"], r["query"]
            if h.get("authorization", "").startswith("Bearer "):
                by_auth["a-oauth"] = r
            elif "x-api-key" in h:
                by_auth["a-header"] = r
            elif "api_key" in q:
                by_auth["a-query"] = r
            elif h.get("authorization", "").startswith("Basic "):
                by_auth["a-basic"] = r
            else:
                by_auth["a-none"] = r
        self.assertEqual(sorted(by_auth), sorted(SECRETS))

        r = by_auth["a-oauth"]
        self.assertEqual(r["headers"]["authorization"], "Bearer oauth-secret-token-1")
        self.assertNotIn("x-api-key", r["headers"])
        self.assertEqual(r["query"], {})
        r = by_auth["a-header"]
        self.assertEqual(r["headers"]["x-api-key"], "header-secret-key-2")
        self.assertEqual(r["headers"]["authorization"], "Token key=header-secret-key-2")
        self.assertEqual(r["query"], {})
        r = by_auth["a-query"]
        self.assertEqual(r["query"], {"api_key": "query-secret-key-3"})
        self.assertNotIn("authorization", r["headers"])
        self.assertNotIn("x-api-key", r["headers"])
        r = by_auth["a-basic"]
        user, _, password = base64.b64decode(r["headers"]["authorization"][len("Basic "):]).decode().partition(":")
        self.assertEqual((user, password), ("basic-user-4", "basic-secret-pass-4"))
        self.assertEqual(r["query"], {})
        r = by_auth["a-none"]
        self.assertNotIn("authorization", r["headers"])
        self.assertNotIn("x-api-key", r["headers"])
        self.assertEqual(r["query"], {})

        for integration, (_, secrets) in SECRETS.items():
            # the script saw the response and stored it
            call = self.metadata(d, integration, "c-" + integration)["call"]
            self.assertEqual((call["rc"], call["status"]), (0, 201), call)
            self.assertEqual(json.loads(call["body"]), {"id": 42, "got": {"name": "widget", "n": 3}})
            # the request is logged, without any secret
            full = d.execution(executions[integration]["id"])
            messages = [line["message"] for line in full["logs"]]
            self.assertIn("POST /things answered 201", messages)
            self.assertTrue(any("POST" in m and f"127.0.0.1:{self.provider.port}/things" in m and "201" in m
                                for m in messages if m != "POST /things answered 201"), messages)
            text = json.dumps(full)
            for secret in secrets:
                self.assertNotIn(secret, text)
                self.assertNotIn(secret, d.logs())

    # -- retries -----------------------------------------------------------

    def test_retry_after_through_the_daemon(self):
        self.provider.route("GET", "/flaky",
                            {"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": "slow down"}},
                            {"status": 200, "body": {"ok": True}})
        d = self.start(environment={"CALLER_PATH": "/flaky", "CALLER_RETRIES": "3"})
        self.connect(d, "a-oauth", "r1")
        ex = self.only(d, connection_id="r1")
        self.assertEqual(ex["status"], "succeeded", ex)
        reqs = self.provider.received("GET", "/flaky")
        self.assertEqual(len(reqs), 2)
        self.assertTrue(all(r["headers"]["authorization"] == "Bearer t-r1" for r in reqs))
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 0.9)
        self.assertLess(reqs[1]["time"] - reqs[0]["time"], 3.0)
        call = self.metadata(d, "a-oauth", "r1")["call"]
        self.assertEqual((call["status"], json.loads(call["body"])), (200, {"ok": True}))

    def test_provider_retry_header_through_the_daemon(self):
        self.provider.route("GET", "/flaky",
                            {"status": 503, "headers": {"X-Retry-In": "1"}, "body": {"error": "busy"}},
                            {"status": 200, "body": {"ok": 2}})
        d = self.start(environment={"CALLER_PATH": "/flaky", "CALLER_RETRIES": "1"})
        self.connect(d, "a-oauth", "r3")
        self.assertEqual(self.only(d, connection_id="r3")["status"], "succeeded")
        reqs = self.provider.received("GET", "/flaky")
        self.assertEqual(len(reqs), 2)
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 0.9)
        self.assertEqual(self.metadata(d, "a-oauth", "r3")["call"]["status"], 200)

    def test_retry_wait_capped_by_the_deadline(self):
        self.provider.route("GET", "/flaky",
                            {"status": 429, "headers": {"Retry-After": "30"}, "body": {"error": "later"}},
                            {"status": 200, "body": {"ok": True}})
        d = self.start(environment={"CALLER_PATH": "/flaky", "CALLER_RETRIES": "3"},
                       scripts={"caller": {"deadline_s": 2}})
        t0 = time.monotonic()
        self.connect(d, "a-oauth", "r4")
        ex = self.only(d, connection_id="r4")
        # no 30 s wait: the script gets the 429 and ends before its deadline
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(ex["status"], "succeeded", ex)
        self.assertEqual(len(self.provider.received("GET", "/flaky")), 1)
        self.assertEqual(self.metadata(d, "a-oauth", "r4")["call"]["status"], 429)
        messages = [line["message"] for line in d.execution(ex["id"])["logs"]]
        self.assertTrue(any("no retry, a wait of 30000 ms would pass the deadline" in m for m in messages), messages)

    def test_no_retry_unless_asked(self):
        self.provider.route("GET", "/flaky",
                            {"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": "slow down"}},
                            {"status": 200, "body": {"ok": True}})
        d = self.start(environment={"CALLER_PATH": "/flaky"})
        self.connect(d, "a-oauth", "r2")
        self.assertEqual(self.only(d, connection_id="r2")["status"], "succeeded")
        self.assertEqual(len(self.provider.received("GET", "/flaky")), 1)
        call = self.metadata(d, "a-oauth", "r2")["call"]
        self.assertEqual((call["rc"], call["status"]), (0, 429))

    # -- pagination --------------------------------------------------------

    RECORDS = [{"id": i} for i in range(1, 8)]  # 7 records, pages of 3: 3 + 3 + 1

    def serve_pages(self):
        records = self.RECORDS
        port = self.provider.port

        def cursor(record):
            start = int(record["query"].get("after", "0"))
            limit = int(record["query"]["limit"])
            page = records[start:start + limit]
            more = start + limit < len(records)
            return {"body": {"data": page, "meta": {"next": str(start + limit) if more else None}}}

        def link(record):
            page_no = int(record["query"].get("page", "1"))
            per = int(record["query"]["per_page"])
            page = records[(page_no - 1) * per:page_no * per]
            headers = {}
            if page_no * per < len(records):
                nxt = f"http://127.0.0.1:{port}/link/items?page={page_no + 1}&per_page={per}"
                headers["Link"] = f'<{nxt}>; rel="next", <http://127.0.0.1:{port}/link/items?page=1>; rel="first"'
            return {"body": page, "headers": headers}

        def body_link(record):
            page_no = int(record["query"].get("page", "1"))
            per = int(record["query"]["per_page"])
            page = records[(page_no - 1) * per:page_no * per]
            nxt = (f"http://127.0.0.1:{port}/bodylink/items?page={page_no + 1}&per_page={per}"
                   if page_no * per < len(records) else None)
            return {"body": {"items": page, "links": {"next": nxt}}}

        def offset(record):
            skip, take = int(record["query"]["skip"]), int(record["query"]["take"])
            return {"body": {"results": records[skip:skip + take]}}

        self.provider.route("GET", "/cursor/items", cursor)
        self.provider.route("GET", "/link/items", link)
        self.provider.route("GET", "/bodylink/items", body_link)
        self.provider.route("GET", "/offset/items", offset)

    def test_pagination_in_each_style(self):
        self.serve_pages()
        d = self.start(environment={"PAGER_PATH": "/items", "PAGER_LIMIT": "3"})
        styles = ["p-cursor", "p-link", "p-body-link", "p-offset"]
        for integration in styles:
            self.connect(d, integration, "pg-" + integration)
        for integration in styles:
            with self.subTest(style=integration):
                ex = self.only(d, connection_id="pg-" + integration)
                self.assertEqual((ex["script"], ex["status"]), ("pager", "succeeded"), ex)
                paged = self.metadata(d, integration, "pg-" + integration)["paged"]
                self.assertEqual(paged, {"rc": 0, "pages": 3, "records": 7,
                                         "items": [self.RECORDS[0:3], self.RECORDS[3:6], self.RECORDS[6:7]]})
                for r in self.provider.requests:
                    if r["path"].startswith("/" + integration[2:].replace("-", "")):
                        self.assertEqual(r["headers"]["authorization"], "Bearer t-pg-" + integration)

        q = [r["query"] for r in self.provider.received("GET", "/cursor/items")]
        self.assertEqual(q, [{"limit": "3"}, {"limit": "3", "after": "3"}, {"limit": "3", "after": "6"}])
        q = [r["query"] for r in self.provider.received("GET", "/link/items")]
        self.assertEqual(q, [{"per_page": "3"}, {"page": "2", "per_page": "3"}, {"page": "3", "per_page": "3"}])
        q = [r["query"] for r in self.provider.received("GET", "/bodylink/items")]
        self.assertEqual(q, [{"per_page": "3"}, {"page": "2", "per_page": "3"}, {"page": "3", "per_page": "3"}])
        # the short third page is the last: no fourth request
        q = [r["query"] for r in self.provider.received("GET", "/offset/items")]
        self.assertEqual(q, [{"skip": "0", "take": "3"}, {"skip": "3", "take": "3"}, {"skip": "6", "take": "3"}])

    def test_pagination_fails_on_an_error_page(self):
        def cursor(record):
            if record["query"].get("after"):
                return {"status": 500, "body": {"error": "boom"}}
            return {"body": {"data": self.RECORDS[:3], "meta": {"next": "3"}}}
        self.provider.route("GET", "/cursor/items", cursor)
        d = self.start(environment={"PAGER_PATH": "/items", "PAGER_LIMIT": "3"})
        self.connect(d, "p-cursor", "pe")
        ex = self.only(d, connection_id="pe")
        self.assertEqual(ex["status"], "failed", ex)
        self.assertEqual(ex["error"], "paginate /items: action failed")
        self.assertEqual(self.metadata(d, "p-cursor", "pe")["paged"],
                         {"rc": -7, "pages": 1, "records": 3, "items": [self.RECORDS[:3]]})
        messages = [line["message"] for line in d.execution(ex["id"])["logs"]]
        self.assertIn("paginate: page 2 came back with status 500", messages)

    # -- metadata, environment, webhook URL --------------------------------

    def test_metadata_env_and_webhook_url(self):
        seen = {}

        def ping(record):
            # callall is inside proxy() now: what it wrote before is in the store already
            status, _, body = d.request("GET", "/connections/m1?provider_config_key=everything")
            seen["during"] = (status, body["metadata"] if status == 200 else body)
            return {"status": 200, "body": {"pong": True}}
        self.provider.route("GET", "/ping", ping)
        d = self.start(environment={"GREETING": "configured"},
                       extra_env={"GREETING": "from-the-process", "UNLISTED": "x"},
                       webhook_base_url="https://hooks.example.test/base/")
        self.connect(d, "everything", "m1", {"type": "API_KEY", "apiKey": "k-m1"})
        ex = {e["script"]: e for e in d.wait_executions(2, connection_id="m1")}
        self.assertEqual((ex["callall"]["status"], ex["echo"]["status"]), ("succeeded", "succeeded"), ex)
        self.assertEqual(ex["echo"]["parent_execution_id"], ex["callall"]["id"])
        self.assertEqual(seen["during"], (200, {"a": 1, "b": 2}))

        meta = self.metadata(d, "everything", "m1")
        self.assertEqual((meta["a"], meta["b"], meta["meta_has_a_b"]), (1, 2, True))
        self.assertEqual((meta["rc_conn"], meta["conn_has_credentials"], meta["conn_id_ok"]), (0, True, True))
        # the configured value, not the daemon's own environment
        self.assertEqual((meta["rc_env"], meta["env"]), (0, "configured"))
        # PATH is set in the daemon's environment but not configured
        self.assertEqual(meta["rc_env_other"], -3)
        # webhook_base_url without its trailing "/", then "/" + the integration
        self.assertEqual((meta["rc_url"], meta["webhook"]), (0, "https://hooks.example.test/base/everything"))
        self.assertEqual((meta["rc_act"], meta["action_out"]), (0, {"x": 1}))
        self.assertEqual(meta["rc_missing_action"], -3)
        self.assertEqual(meta["rc_bad_metadata"], -1)
        self.assertEqual(meta["rc_proxy"], 0)

        # Without GREETING in `environment:` the script cannot read it, though
        # the daemon's process has it; the webhook URL defaults to the listen address.
        d.settings["environment"] = {"OTHER": "1"}
        del d.settings["webhook_base_url"]
        d.write_config()
        status, _, body = d.request("POST", "/reload")
        self.assertEqual(status, 200, body)
        self.connect(d, "everything", "m2", {"type": "API_KEY", "apiKey": "k-m2"})
        d.wait_executions(2, connection_id="m2")
        meta = self.metadata(d, "everything", "m2")
        self.assertEqual((meta["rc_env"], meta["env"]), (-3, ""))
        self.assertEqual(meta["webhook"], f"http://127.0.0.1:{d.port}/webhook/everything")

    # -- action composition depth ------------------------------------------

    def check_depth_limit(self, integration, **settings):
        d = self.start(**settings)
        self.connect(d, integration, "deep1", {"type": "NONE"})
        status, _, body = d.request("POST", "/action/trigger", {"action_name": "recurse", "input": {"depth": 0}},
                                    headers={"Connection-Id": "deep1", "Provider-Config-Key": integration},
                                    timeout=60)
        self.assertEqual(status, 500, body)
        self.assertEqual(body["error"]["code"], "action_script_failure")
        self.assertEqual(body["error"]["message"], "depth 0: trigger_action: action failed")

        ex = d.wait_executions(DEPTH_MAX + 1, connection_id="deep1")
        self.assertEqual(len(ex), DEPTH_MAX + 1, ex)
        ex.sort(key=lambda e: e["id"])
        # a chain: each one the child of the one before
        self.assertIsNone(ex[0]["parent_execution_id"])
        for parent, child in zip(ex, ex[1:]):
            self.assertEqual(child["parent_execution_id"], parent["id"])
        for depth, e in enumerate(ex):
            self.assertEqual((e["script"], e["event"], e["status"]), ("recurse", "action", "failed"), e)
            messages = [line["message"] for line in d.execution(e["id"])["logs"]]
            self.assertEqual(messages[0], f"recurse at depth {depth}")
            if depth < DEPTH_MAX:
                self.assertEqual(e["error"], f"depth {depth}: trigger_action: action failed")
                self.assertTrue(messages[1].startswith(
                    f"action recurse: action recurse (execution {ex[depth + 1]['id']}) failed: depth {depth + 1}: "),
                    messages)
            else:
                # the deepest is refused by the host, with the reason
                self.assertEqual(e["error"], f"depth {depth}: trigger_action: actions nested too deeply")
                self.assertEqual(messages[1], f"action recurse: actions nested deeper than {DEPTH_MAX}")
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.request("GET", "/healthz", auth=False)[0], 200)

    def test_action_depth_limit(self):
        # one running execution at most: nested actions must not wait for a slot
        self.check_depth_limit("deep", max_concurrency=1)

    def test_action_depth_limit_in_process(self):
        self.check_depth_limit("deep-inproc")


if __name__ == "__main__":
    unittest.main()
