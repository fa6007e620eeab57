"""The HTTP API of docs/api.md, route by route: success and error statuses
with their JSON bodies, against the real daemon with real signed plugins.
Also `evscriptd --check-config` on a good and a broken configuration."""

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse

from harness import SECRET, DaemonTest, env, wait_for

NANGO = """
integrations:
    demo:
        provider: local-test
        on-events:
            post-connection-creation:
                - noop
    plain:
        provider: local-test
    actions:
        provider: local-test
        actions:
            echo:
                description: returns its input
    checked:
        provider: local-test
        on-events:
            validate-connection:
                - failmsg
    slowval:
        provider: local-test
        on-events:
            validate-connection:
                - sleeper
    slowdel:
        provider: local-test
        on-events:
            pre-connection-deletion:
                - sleeper
    faildel:
        provider: local-test
        on-events:
            pre-connection-deletion:
                - failmsg
    oauth:
        provider: local-test-oauth
    basic:
        provider: local-test-basic
    none:
        provider: local-test-none
"""

TEST_PLUGINS = ["noop", "echo", "failmsg", "sleeper"]
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ISO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")
FULL_KEYS = {"id", "connection_id", "provider_config_key", "provider", "connection_config", "metadata",
             "credentials", "created_at", "updated_at", "last_fetched_at", "webhook_url_override", "errors",
             "end_user", "tags"}
ITEM_KEYS = {"id", "connection_id", "provider_config_key", "provider", "created", "metadata", "errors",
             "end_user", "tags"}
EXEC_KEYS = {"id", "event_id", "event", "script", "script_version", "connection_id", "provider_config_key",
             "status", "started_at", "ended_at", "duration_ms", "error", "retry_of", "parent_execution_id",
             "logs_dropped", "host_id"}


class ApiTest(DaemonTest):
    def start(self, sleeper_ms=1500, **settings):
        settings.setdefault("environment", {"SLEEPER_MS": str(sleeper_ms), "ZED": "last", "ALPHA": "first"})
        return self.daemon(NANGO, settings=settings, test_plugins=TEST_PLUGINS)

    def assertError(self, reply, status, code):
        st, _, body = reply
        self.assertEqual(st, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertIsInstance(body["error"]["message"], str)
        return body["error"]

    # ---- rules for every route

    def test_auth(self):
        d = self.start()
        for method, path in (("GET", "/connections"), ("POST", "/connections"), ("GET", "/no/such/route"),
                             ("DELETE", "/connections/x"), ("GET", "/metrics"), ("POST", "/reload")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET},
                            {"Authorization": "Basic " + SECRET}):
                st, hdrs, body = d.request(method, path, {"x": 1}, headers=headers, auth=False)
                self.assertEqual(st, 401, (method, path, headers))
                self.assertEqual(list(body.keys()), ["error"])
                self.assertEqual(body["error"]["code"], "unauthorized")
        # auth before the body size
        st, _, body = d.request_expect("POST", "/connections", b"x" * (2 << 20), auth=False)
        self.assertEqual(st, 401)
        # /healthz is public
        st, _, body = d.request("GET", "/healthz", auth=False)
        self.assertEqual((st, body), (200, {"status": "ok"}))

    def test_unknown_route_and_method(self):
        d = self.start()
        self.assertError(d.request("GET", "/nope"), 404, "not_found")
        st, hdrs, body = d.request("PUT", "/connections")
        self.assertEqual(st, 405)
        self.assertEqual(body["error"]["code"], "method_not_allowed")
        allow = {m.strip() for m in hdrs["Allow"].split(",")}
        self.assertEqual(allow, {"GET", "POST"})

    def test_body_too_large(self):
        d = self.start()
        big = json.dumps({"provider_config_key": "plain", "pad": "x" * (1 << 20)}).encode()
        self.assertError(d.request_expect("POST", "/connections", big), 413, "request_too_large")

    # ---- POST /connections

    def test_import_errors(self):
        d = self.start()
        err = self.assertError(d.request("POST", "/connections", raw=b"{nope"), 400, "invalid_json")
        self.assertError(d.request("POST", "/connections", raw=b"[1,2]"), 400, "invalid_json")
        err = self.assertError(d.request("POST", "/connections", {"provider_config_key": "plain"}),
                               400, "invalid_body")
        self.assertIn({"path": ["credentials"], "message": "is required"}, err["errors"])
        err = self.assertError(d.request("POST", "/connections", {
            "provider_config_key": "plain", "credentials": {"type": "API_KEY", "apiKey": "k", "extra": 1}}),
            400, "invalid_body")
        self.assertEqual(err["errors"][0]["path"], ["credentials", "extra"])
        self.assertError(d.request("POST", "/connections", {
            "provider_config_key": "plain", "credentials": {"type": "API_KEY"}}), 400, "invalid_body")
        self.assertError(d.request("POST", "/connections", {
            "provider_config_key": "plain", "credentials": {"type": "API_KEY", "apiKey": "k"},
            "metadata": [1]}), 400, "invalid_body")
        self.assertError(d.create_connection("nosuch", "c1"), 404, "unknown_provider_config")
        # the type must match the provider's auth mode; unsupported types are 422 too
        self.assertError(d.create_connection("plain", "c1", {"type": "OAUTH2", "access_token": "t"}),
                         422, "invalid_credentials_type")
        self.assertError(d.create_connection("plain", "c1", {"type": "OAUTH1", "oauth_token": "t"}),
                         422, "invalid_credentials_type")
        self.assertError(d.create_connection("oauth", "c1"), 422, "invalid_credentials_type")
        st, _, body = d.request("GET", "/connections")
        self.assertEqual(body, {"connections": []}, "nothing was stored")

    def test_import_shapes_and_reconnect(self):
        d = self.start()
        st, _, c = d.create_connection("plain", "c/1 x", metadata={"a": 1}, connection_config={"port": "9"},
                                       end_user={"id": "ignored"})
        self.assertEqual(st, 201, c)
        self.assertEqual(set(c), FULL_KEYS)
        self.assertIsInstance(c["id"], int)
        self.assertEqual((c["connection_id"], c["provider_config_key"], c["provider"]),
                         ("c/1 x", "plain", "local-test"))
        self.assertEqual(c["credentials"], {"type": "API_KEY", "apiKey": "k-c/1 x"})
        self.assertEqual((c["metadata"], c["connection_config"]), ({"a": 1}, {"port": "9"}))
        self.assertRegex(c["created_at"], ISO_Z)
        self.assertRegex(c["updated_at"], ISO_Z)
        self.assertEqual((c["errors"], c["end_user"], c["tags"], c["last_fetched_at"]), ([], None, {}, None))

        # GET with the id pasted unencoded, as the node client does
        st, _, got = d.request("GET", "/connections/c/1%20x?provider_config_key=plain&force_refresh=false"
                                      "&refresh_token=false&refresh_github_app_jwt_token=false")
        self.assertEqual((st, got), (200, c))

        time.sleep(0.01)
        st, _, r = d.create_connection("plain", "c/1 x", {"type": "API_KEY", "apiKey": "new"})
        self.assertEqual(st, 201, r)
        self.assertEqual(r["id"], c["id"])
        self.assertEqual(r["created_at"], c["created_at"])
        self.assertGreater(r["updated_at"], c["updated_at"])
        self.assertEqual(r["metadata"], {"a": 1}, "kept when absent")
        self.assertEqual(r["connection_config"], {"port": "9"}, "kept when absent")
        self.assertEqual(r["credentials"]["apiKey"], "new")

        # no connection_id: a UUID v4
        st, _, u = d.request("POST", "/connections", {"provider_config_key": "plain",
                                                     "credentials": {"type": "API_KEY", "apiKey": "k"}})
        self.assertEqual(st, 201, u)
        self.assertRegex(u["connection_id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(u["metadata"], {})

    def test_credential_types(self):
        d = self.start()
        raw = {"type": "OAUTH2", "access_token": "at", "refresh_token": "rt", "expires_at": "2030-01-01T00:00:00.000Z"}
        st, _, c = d.create_connection("oauth", "o1", raw)
        self.assertEqual(st, 201, c)
        self.assertEqual(c["credentials"]["access_token"], "at")
        self.assertNotIn("refresh_token", c["credentials"])
        self.assertNotIn("refresh_token", c["credentials"]["raw"])
        st, _, g = d.request("GET", "/connections/o1?provider_config_key=oauth&refresh_token=true")
        self.assertEqual(st, 200)
        self.assertEqual(g["credentials"]["refresh_token"], "rt")
        self.assertEqual(g["credentials"]["raw"], raw)
        st, _, b = d.create_connection("basic", "b1", {"type": "BASIC", "username": "u", "password": ""})
        self.assertEqual((st, b["credentials"]), (201, {"type": "BASIC", "username": "u", "password": ""}))
        st, _, n = d.create_connection("none", "n1", {"type": "NONE"})
        self.assertEqual((st, n["credentials"]), (201, {"type": "NONE"}))

    def test_validate_connection_failure_stores_nothing(self):
        d = self.start()
        err = self.assertError(d.create_connection("checked", "v1"), 400, "connection_validation_failed")
        self.assertEqual(err["message"], "the provider said no to v1")
        self.assertEqual(err["payload"]["script"], "failmsg")
        self.assertIsInstance(err["payload"]["execution_id"], int)
        self.assertError(d.request("GET", "/connections/v1?provider_config_key=checked"), 404, "not_found")
        ex = d.execution(err["payload"]["execution_id"])
        self.assertEqual((ex["event"], ex["status"], ex["script"]), ("validate-connection", "failed", "failmsg"))
        # a validate-connection execution cannot be retried
        self.assertError(d.request("POST", f"/executions/{ex['id']}/retry"), 422, "not_retryable")

    def test_idempotency_key(self):
        d = self.start()
        body = {"provider_config_key": "demo", "connection_id": "i1",
                "credentials": {"type": "API_KEY", "apiKey": "k"}}
        key = {"Idempotency-Key": "key-1"}
        st, h1, first = d.request("POST", "/connections", body, headers=key)
        self.assertEqual(st, 201, first)
        self.assertNotIn("Idempotent-Replayed", h1)
        st, h2, again = d.request("POST", "/connections", body, headers=key)
        self.assertEqual((st, again), (201, first))
        self.assertEqual(h2.get("Idempotent-Replayed"), "true")
        # one event, one execution
        d.wait_executions(1, connection_id="i1")
        time.sleep(0.5)
        self.assertEqual(len(d.executions(connection_id="i1")), 1)
        # the same key with another body
        other = dict(body, connection_id="i2")
        self.assertError(d.request("POST", "/connections", other, headers=key), 422, "idempotency_key_reused")
        self.assertError(d.request("POST", "/connections", body, headers={"Idempotency-Key": "has space"}),
                         400, "invalid_headers")
        # a failed first request is not remembered
        bad = {"provider_config_key": "nosuch", "credentials": {"type": "API_KEY", "apiKey": "k"}}
        self.assertError(d.request("POST", "/connections", bad, headers={"Idempotency-Key": "k2"}),
                         404, "unknown_provider_config")
        st, _, ok = d.request("POST", "/connections", dict(body, connection_id="i3"),
                              headers={"Idempotency-Key": "k2"})
        self.assertEqual(st, 201, ok)

    def test_idempotency_key_in_use(self):
        d = self.start(sleeper_ms=1500)
        body = {"provider_config_key": "slowval", "connection_id": "s1",
                "credentials": {"type": "API_KEY", "apiKey": "k"}}
        results = []
        t = threading.Thread(target=lambda: results.append(
            d.request("POST", "/connections", body, headers={"Idempotency-Key": "slow"})))
        t.start()
        time.sleep(0.5)
        self.assertError(d.request("POST", "/connections", body, headers={"Idempotency-Key": "slow"}),
                         409, "idempotency_key_in_use")
        t.join()
        self.assertEqual(results[0][0], 201, results[0])

    # ---- GET /connections

    def test_list(self):
        d = self.start()
        for cid, integ in (("a1", "plain"), ("a2", "plain"), ("b1", "demo")):
            self.assertEqual(d.create_connection(integ, cid, metadata={"n": cid})[0], 201)
            time.sleep(0.005)
        st, _, body = d.request("GET", "/connections")
        self.assertEqual(st, 200)
        items = body["connections"]
        self.assertEqual([c["connection_id"] for c in items], ["b1", "a2", "a1"], "newest first")
        for c in items:
            self.assertEqual(set(c), ITEM_KEYS)
            self.assertRegex(c["created"], ISO_OFFSET)
            self.assertEqual(c["metadata"], {"n": c["connection_id"]})

        def ids(query):
            st, _, b = d.request("GET", "/connections?" + query)
            self.assertEqual(st, 200, b)
            return [c["connection_id"] for c in b["connections"]]

        self.assertEqual(ids("connectionId=a1"), ["a1"])
        self.assertEqual(ids("integrationId=plain"), ["a2", "a1"])
        self.assertEqual(ids("integrationId=demo,plain"), ["b1", "a2", "a1"])
        self.assertEqual(ids("integrationId="), ["b1", "a2", "a1"], "an empty filter filters nothing")
        self.assertEqual(ids("search=2"), ["a2"])
        self.assertEqual(ids("endUserId=u1"), [])
        self.assertEqual(ids("limit=1&page=1"), ["a2"])
        self.assertError(d.request("GET", "/connections?limit=0"), 400, "invalid_query_params")
        self.assertError(d.request("GET", "/connections?page=-1"), 400, "invalid_query_params")
        self.assertError(d.request("GET", "/connections?limit=%2B5"), 400, "invalid_query_params")

    def test_get_errors(self):
        d = self.start()
        d.create_connection("plain", "g1")
        self.assertError(d.request("GET", "/connections/g1"), 400, "invalid_query_params")
        self.assertError(d.request("GET", "/connections/g1?provider_config_key=nosuch"), 404,
                         "unknown_provider_config")
        self.assertError(d.request("GET", "/connections/zz?provider_config_key=plain"), 404, "not_found")
        self.assertError(d.request("GET", "/connections/g1?provider_config_key=demo"), 404, "not_found")

    # ---- DELETE /connections/{id}

    def test_delete(self):
        d = self.start()
        d.create_connection("plain", "d/1")
        self.assertError(d.request("DELETE", "/connections/d/1"), 400, "invalid_query_params")
        self.assertError(d.request("DELETE", "/connections/d/1?provider_config_key=nosuch"), 404,
                         "unknown_provider_config")
        self.assertError(d.request("DELETE", "/connections/zz?provider_config_key=plain"), 404,
                         "unknown_connection")
        st, _, body = d.request("DELETE", "/connections/d/1?provider_config_key=plain")
        self.assertEqual((st, body), (200, {"success": True}))
        self.assertError(d.request("GET", "/connections/d/1?provider_config_key=plain"), 404, "not_found")
        self.assertError(d.request("DELETE", "/connections/d/1?provider_config_key=plain"), 404,
                         "unknown_connection")

    def test_delete_with_failing_script_still_deletes(self):
        d = self.start()
        d.create_connection("faildel", "f1")
        st, _, body = d.request("DELETE", "/connections/f1?provider_config_key=faildel")
        self.assertEqual((st, body), (200, {"success": True}))
        ex = d.executions(connection_id="f1")
        self.assertEqual([(e["event"], e["status"]) for e in ex], [("pre-connection-deletion", "failed")])
        self.assertEqual(ex[0]["error"], "the provider said no to f1")
        self.assertError(d.request("GET", "/connections/f1?provider_config_key=faildel"), 404, "not_found")

    def test_connection_deleting(self):
        d = self.start(sleeper_ms=1500)
        d.create_connection("slowdel", "x1")
        results = []
        t = threading.Thread(target=lambda: results.append(
            d.request("DELETE", "/connections/x1?provider_config_key=slowdel")))
        t0 = time.monotonic()
        t.start()
        wait_for(lambda: d.executions(connection_id="x1", event="pre-connection-deletion"), 10,
                 what="the deletion script to start")
        self.assertError(d.request("DELETE", "/connections/x1?provider_config_key=slowdel"), 409,
                         "connection_deleting")
        self.assertError(d.create_connection("slowdel", "x1"), 409, "connection_deleting")
        self.assertError(d.request("POST", "/connections/metadata", {
            "connection_id": "x1", "provider_config_key": "slowdel", "metadata": {}}), 409, "connection_deleting")
        st, _, c = d.request("GET", "/connections/x1?provider_config_key=slowdel")
        self.assertEqual(st, 200, "a connection being deleted is still returned")
        t.join()
        self.assertGreaterEqual(time.monotonic() - t0, 1.4, "DELETE waited for its script")
        self.assertEqual(results[0][:1], (200,))

    # ---- metadata

    def test_metadata(self):
        d = self.start()
        d.create_connection("plain", "m1", metadata={"keep": 1, "x": 1})
        d.create_connection("plain", "m2")
        body = {"metadata": {"x": 2, "n": {"a": 1}}, "connection_id": "m1", "provider_config_key": "plain"}
        st, _, echo = d.request("POST", "/connections/metadata", body)
        self.assertEqual((st, echo), (201, body))
        self.assertEqual(d.request("GET", "/connections/m1?provider_config_key=plain")[2]["metadata"],
                         {"x": 2, "n": {"a": 1}})
        patch = {"metadata": {"y": 3, "n": {"b": 2}}, "connection_id": ["m1", "m2"], "provider_config_key": "plain"}
        st, _, echo = d.request("PATCH", "/connections/metadata", patch)
        self.assertEqual((st, echo), (200, patch))
        self.assertEqual(d.request("GET", "/connections/m1?provider_config_key=plain")[2]["metadata"],
                         {"x": 2, "y": 3, "n": {"b": 2}})
        self.assertEqual(d.request("GET", "/connections/m2?provider_config_key=plain")[2]["metadata"],
                         {"y": 3, "n": {"b": 2}})
        err = self.assertError(d.request("PATCH", "/connections/metadata", {
            "metadata": {"z": 1}, "connection_id": ["m1", "nope"], "provider_config_key": "plain"}),
            404, "unknown_connection")
        self.assertEqual(err["message"], "Connection with connection id nope and provider config key plain not found")
        self.assertNotIn("z", d.request("GET", "/connections/m1?provider_config_key=plain")[2]["metadata"],
                         "all or nothing")
        self.assertError(d.request("POST", "/connections/metadata", {
            "metadata": [1], "connection_id": "m1", "provider_config_key": "plain"}), 400, "invalid_body")
        self.assertError(d.request("POST", "/connections/metadata", {
            "metadata": {}, "connection_id": [], "provider_config_key": "plain"}), 400, "invalid_body")
        self.assertError(d.request("POST", "/connections/metadata", raw=b"nope"), 400, "invalid_json")

    # ---- actions and environment

    def test_action_trigger(self):
        d = self.start()
        d.create_connection("actions", "act1")
        hdrs = {"Connection-Id": "act1", "Provider-Config-Key": "actions"}
        st, _, out = d.request("POST", "/action/trigger", {"action_name": "echo", "input": {"a": [1, "é"]}},
                               headers=hdrs)
        self.assertEqual((st, out), (200, {"a": [1, "é"]}))
        st, _, out = d.request("POST", "/action/trigger", {"action_name": "echo"}, headers=hdrs)
        self.assertEqual((st, out), (200, None))
        ex = d.executions(event="action")
        self.assertTrue(ex and all(e["event"] == "action" and e["event_id"] is None for e in ex), ex)
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "noop"}, headers=hdrs),
                         404, "not_found")
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "echo"},
                                   headers={"Connection-Id": "nope", "Provider-Config-Key": "actions"}),
                         404, "unknown_connection")
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "echo"},
                                   headers={"Connection-Id": "act1", "Provider-Config-Key": "nosuch"}),
                         404, "unknown_provider_config")
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "echo"},
                                   headers={"Connection-Id": "act1"}), 400, "invalid_headers")
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "echo"},
                                   headers=dict(hdrs, **{"X-Async": "true"})), 422, "unsupported")
        self.assertError(d.request("POST", "/action/trigger", {"action_name": "bad name!"}, headers=hdrs),
                         400, "invalid_body")

    def test_environment_variables(self):
        d = self.start()
        st, _, body = d.request("GET", "/environment-variables")
        self.assertEqual(st, 200)
        self.assertEqual(body, [{"name": "ALPHA", "value": "first"}, {"name": "SLEEPER_MS", "value": "1500"},
                                {"name": "ZED", "value": "last"}])

    # ---- executions

    def test_executions(self):
        d = self.start()
        for i in range(3):
            self.assertEqual(d.create_connection("demo", f"e{i}")[0], 201)
        ex = d.wait_executions(3, script="noop")
        self.assertEqual([e["id"] for e in ex], sorted((e["id"] for e in ex), reverse=True))
        for e in ex:
            self.assertEqual(set(e), EXEC_KEYS)
            self.assertEqual((e["event"], e["status"], e["script_version"]),
                             ("post-connection-creation", "succeeded", "1.0.0"))
            self.assertRegex(e["started_at"], ISO_Z)
            self.assertRegex(e["ended_at"], ISO_Z)
            self.assertIsInstance(e["duration_ms"], int)
            self.assertIsInstance(e["event_id"], int)
            # host_id unset: the machine's host name
            self.assertEqual(e["host_id"], socket.gethostname())
        # paging
        st, _, page1 = d.request("GET", "/executions?limit=2&script=noop")
        self.assertEqual(len(page1["executions"]), 2)
        self.assertIsInstance(page1["next_cursor"], str)
        st, _, page2 = d.request("GET", "/executions?limit=2&script=noop&cursor="
                                 + urllib.parse.quote(page1["next_cursor"]))
        self.assertEqual([e["id"] for e in page1["executions"] + page2["executions"]], [e["id"] for e in ex])
        self.assertIsNone(page2["next_cursor"])
        self.assertEqual(len(d.executions(connection_id="e1")), 1)
        self.assertEqual(d.executions(status="failed"), [])
        for q in ("status=weird", "event=weird", "limit=0", "limit=201", "cursor=abc"):
            self.assertError(d.request("GET", "/executions?" + q), 400, "invalid_query_params")
        # one with its logs
        one = d.execution(ex[0]["id"])
        self.assertIsInstance(one["logs"], list)
        for line in one["logs"]:
            self.assertEqual(set(line), {"ts", "level", "message"})
        self.assertError(d.request("GET", "/executions/999999"), 404, "not_found")
        self.assertError(d.request("GET", "/executions/abc"), 404, "not_found")
        # retry: a new execution of the same event
        st, _, r = d.request("POST", f"/executions/{ex[0]['id']}/retry")
        self.assertEqual(st, 202, r)
        self.assertEqual(r["retry_of"], ex[0]["id"])
        self.assertEqual(r["script"], "noop")
        d.wait_executions(4, script="noop")
        self.assertError(d.request("POST", "/executions/999999/retry"), 404, "not_found")
        # a post-connection-creation retry of a deleted connection
        d.request("DELETE", "/connections/e2?provider_config_key=demo")
        e2 = d.executions(connection_id="e2")[0]
        self.assertError(d.request("POST", f"/executions/{e2['id']}/retry"), 409, "connection_gone")

    # ---- plugins, reload, health, metrics

    def test_plugins_and_reload(self):
        d = self.start()
        st, _, p = d.request("GET", "/plugins")
        self.assertEqual(st, 200)
        self.assertEqual(p["generation"], 1)
        self.assertEqual(sorted(x["name"] for x in p["loaded"]), sorted(TEST_PLUGINS))
        for x in p["loaded"]:
            self.assertRegex(x["key_id"], r"^[0-9A-F]{16}$")
            self.assertRegex(x["hash"], r"^[0-9a-f]{128}$")
            self.assertEqual(x["version"], "1.0.0")
            self.assertRegex(x["loaded_at"], ISO_Z)
            self.assertIn(x["kind"], ("event", "action"))
        self.assertEqual({x["name"]: x["kind"] for x in p["loaded"]}["echo"], "action")
        self.assertEqual(p["refused"], [])

        st, _, r = d.request("POST", "/reload")
        self.assertEqual(st, 200, r)
        self.assertEqual(r["generation"], 2)
        self.assertEqual(r["refused"], [])

        # a tampered plugin is refused with its reason code
        path = os.path.join(d.plugin_dir, "noop.so")
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[-1] ^= 0xFF
            f.seek(0)
            f.write(data)
        err = self.assertError(d.request("POST", "/reload"), 422, "reload_failed")
        self.assertEqual([x["reason_code"] for x in err["payload"]["refused"]], ["bad_signature"])
        st, _, p = d.request("GET", "/plugins")
        self.assertEqual(p["refused"][0]["name"], "noop")
        self.assertTrue(p["refused"][0]["kept_previous"])
        self.assertIn("noop", [x["name"] for x in p["loaded"]])

        # a broken config keeps the generation and says where
        gen = p["generation"]
        with open(d.config_path, "a") as f:
            f.write("\nlisten: [\n")
        err = self.assertError(d.request("POST", "/reload"), 422, "reload_failed")
        self.assertRegex(err["message"], r"evscript\.yaml:\d+:\d+: ")
        self.assertEqual(err["payload"]["config_error"], err["message"])
        st, _, p = d.request("GET", "/plugins")
        self.assertEqual(p["generation"], gen)
        self.assertEqual(p["last_reload_error"], err["message"])

    def test_health_and_metrics(self):
        d = self.start()
        st, _, body = d.request("GET", "/healthz", auth=False)
        self.assertEqual((st, body), (200, {"status": "ok"}))
        st, hdrs, text = d.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertIn("evscript_generation 1\n", text)
        self.assertIn(f"evscript_plugins_loaded {len(TEST_PLUGINS)}\n", text)
        self.assertIn("evscript_events_pending ", text)


class CheckConfigTest(DaemonTest):
    def run_check(self, d):
        e = dict(os.environ)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        return subprocess.run([env("EVSCRIPTD"), "--config", d.config_path, "--check-config"],
                              capture_output=True, text=True, env=e, timeout=60)

    def test_good_config(self):
        d = self.daemon(NANGO, start=False, test_plugins=["noop", "echo"])
        r = self.run_check(d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("plugin noop 1.0.0: signature ok", r.stdout)
        self.assertIn("plugin echo 1.0.0: signature ok", r.stdout)

    def test_broken_config(self):
        d = self.daemon("integrations:\n    demo:\n        provider: no-such-provider\n", start=False)
        r = self.run_check(d)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"nango\.yaml:3:19: ")
        with open(d.config_path, "w") as f:
            f.write("listen: 127.0.0.1:1\nsecret_key: [\n")
        r = self.run_check(d)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"evscript\.yaml:\d+:\d+: ")
        # the daemon itself refuses to start on it
        p = subprocess.run([env("EVSCRIPTD"), "--config", d.config_path], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"evscript\.yaml:\d+:\d+: ")

    def test_refuses_to_start_without_secret_key(self):
        d = self.daemon("integrations: {}\n", start=False)
        d.settings["secret_key"] = None
        d.write_config()
        e = dict(os.environ)
        e.pop("EVSCRIPT_SECRET_KEY", None)
        p = subprocess.run([env("EVSCRIPTD"), "--config", d.config_path], capture_output=True, text=True,
                           env=e, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("secret_key is not set", p.stderr)
