"""`evscript run` (issue 14): one script run locally with the daemon's own
host functions and no daemon: the proxy reaches the fake provider with the
connection's credentials, paginate follows the provider's cursor, the logs,
metadata change and result are printed; --record saves the provider's
responses and --mock replays them without the provider."""

import json
import os
import subprocess
import unittest

from harness import DaemonTest, FakeProvider, cc_plugin, env, write_file
from test_plugin_docs import ACTION_C

CHAIN_C = r"""
#include <evscript/sdk.h>
EVS_PLUGIN("chain", "1.0.0");
int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	const char *out = NULL;
	int ret = host->trigger_action(ctx, "create-webhook", "{\"events\":[\"push\"]}", &out);

	(void)event;
	if (ret != EVS_OK) {
		host->set_error(ctx, "create-webhook: %s", evs_strerror(ret));
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "chain got %s", out);
	return 0;
}
"""

PLUGIN_C = r"""
#include <evscript/sdk.h>
#include <stdio.h>

EVS_PLUGIN("runme", "1.0.0");

static int count(void *user, const char *records, size_t n)
{
	(void)records;
	*(size_t *)user += n;
	return 0;
}

int on_event(const struct evs_host *host, struct evs_ctx *ctx, const struct evs_event *event)
{
	struct evs_request req = {.size = sizeof(req), .endpoint = "/user"};
	struct evs_response *resp = NULL;
	const char *greeting = NULL, *url = NULL;
	size_t records = 0;
	char meta[300];
	int ret;

	host->log(ctx, EVS_LOG_INFO, "%s for %s of %s", event->name, event->connection_id,
		  event->provider_config_key);
	ret = host->proxy(ctx, &req, &resp);
	if (ret != EVS_OK) {
		host->set_error(ctx, "GET /user: %s", evs_strerror(ret));
		return 1;
	}
	host->log(ctx, EVS_LOG_INFO, "user: HTTP %d %s", resp->status, resp->body);
	host->free_response(ctx, resp);
	req.endpoint = "/items";
	ret = host->paginate(ctx, &req, NULL, count, &records);
	host->log(ctx, EVS_LOG_INFO, "items: %zu (%s)", records, evs_strerror(ret));
	if (host->get_env(ctx, "GREETING", &greeting) == EVS_OK)
		host->log(ctx, EVS_LOG_INFO, "greeting: %s", greeting);
	if (host->get_webhook_url(ctx, &url) == EVS_OK)
		host->log(ctx, EVS_LOG_INFO, "webhook: %s", url);
	snprintf(meta, sizeof(meta), "{\"items\":%zu}", records);
	return host->update_metadata(ctx, meta) == EVS_OK ? 0 : 1;
}
"""


class RunTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.tmp = self.tempdir("evs-run-")
        src = write_file(os.path.join(self.tmp, "runme.c"), PLUGIN_C)
        self.so = cc_plugin(src, os.path.join(self.tmp, "runme.so"), "-fvisibility=hidden")
        self.conn = os.path.join(self.tmp, "connection.json")
        self.write_connection(self.provider.port)
        self.provider.route("GET", "/user", {"body": {"login": "octo"}})
        self.provider.route("GET", "/items", {"body": {"items": [1, 2], "next_cursor": "c2"}},
                            {"body": {"items": [3], "next_cursor": None}})

    def write_connection(self, port):
        with open(self.conn, "w") as f:
            json.dump({"connection_id": "c-42", "provider_config_key": "github", "provider": "local-test",
                       "credentials": {"type": "API_KEY", "apiKey": "secret-key-1"},
                       "connection_config": {"port": str(port)}, "metadata": {"plan": "free"}}, f)

    def run_cli(self, *args):
        self.scratch = os.path.join(self.tmp, "scratch")   # its $TMPDIR
        os.makedirs(self.scratch, exist_ok=True)
        return subprocess.run([env("EVSCRIPT_CLI"), "run", *args], capture_output=True, text=True,
                              timeout=120, cwd=self.tmp, env=dict(os.environ, TMPDIR=self.scratch))

    def event_args(self, *extra):
        return [self.so, "--event", "post-connection-creation", "--connection", self.conn,
                "--providers", env("EVS_PROVIDERS"), "--env", "GREETING=hi", *extra]

    def test_live_run_with_the_real_host(self):
        r = self.run_cli(*self.event_args())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("log info  post-connection-creation for c-42 of github", out)
        self.assertIn('log info  user: HTTP 200 {"login": "octo"}', out)
        self.assertIn("log info  items: 3 (success)", out)
        self.assertIn("log info  greeting: hi", out)
        self.assertIn("log info  webhook: http://127.0.0.1:3003/webhook/github", out)
        self.assertIn('metadata: {"plan":"free"} -> {"plan":"free","items":3}', out)
        self.assertRegex(out, r"result: succeeded \(\d+ ms\)")
        self.assertNotIn("secret-key-1", out + r.stderr)       # the proxy's log lines scrub it
        user = self.provider.received("GET", "/user")
        self.assertEqual(user[0]["headers"]["x-api-key"], "secret-key-1")
        self.assertEqual([q["query"].get("cursor") for q in self.provider.received("GET", "/items")],
                         [None, "c2"])
        self.assertEqual(os.listdir(self.scratch), [])           # its temporary store is gone

    def test_record_then_replay_without_the_provider(self):
        mocks = os.path.join(self.tmp, "mocks")
        r = self.run_cli(*self.event_args("--record", mocks))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"record: 3 responses recorded in {mocks}", r.stdout)
        files = sorted(os.listdir(mocks))
        self.assertEqual(len(files), 3, files)
        saved = [json.load(open(os.path.join(mocks, f))) for f in files]
        self.assertTrue(all("secret-key-1" not in json.dumps(s) for s in saved))
        self.assertIn({"status": 200, "body": '{"login": "octo"}'},
                      [{k: s["response"][k] for k in ("status", "body")} for s in saved])

        # the provider goes away; the replay gives the same run
        self.provider.close()
        self.provider = FakeProvider()
        self.write_connection(self.provider.port)
        r2 = self.run_cli(*self.event_args("--mock", mocks))
        self.assertEqual(r2.returncode, 0, r2.stdout + r2.stderr)
        self.assertIn(f"mock: 3 responses replayed in {mocks}", r2.stdout)
        for line in ('user: HTTP 200 {"login": "octo"}', "items: 3 (success)",
                     'metadata: {"plan":"free"} -> {"plan":"free","items":3}'):
            self.assertIn(line, r2.stdout)
        self.assertEqual(self.provider.requests, [])

        # a request with no recording: said, and the plugin sees a network error
        os.remove(os.path.join(mocks, [f for f in files if "user" in f][0]))
        r3 = self.run_cli(*self.event_args("--mock", mocks))
        self.assertEqual(r3.returncode, 1, r3.stdout)
        self.assertIn("mock: no recorded response for GET /user", r3.stdout)
        self.assertIn("result: failed (returned 1", r3.stdout)
        self.assertIn("GET /user: network error", r3.stdout)

    def test_trigger_action_from_a_plugin_dir(self):
        actions = os.path.join(self.tmp, "actions")
        os.makedirs(actions)
        for name, src, out in (("chain", CHAIN_C, self.tmp), ("create-webhook", ACTION_C, actions)):
            cc_plugin(write_file(os.path.join(self.tmp, name + ".c"), src), os.path.join(out, name + ".so"),
                      "-fvisibility=hidden")
        chain = os.path.join(self.tmp, "chain.so")
        args = [chain, "--event", "post-connection-creation", "--connection", self.conn,
                "--providers", env("EVS_PROVIDERS")]
        r = self.run_cli(*args, "--plugin-dir", actions)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('log info  [create-webhook] input {"events":["push"]}', r.stdout)
        self.assertIn('log info  chain got {"id":1}', r.stdout)
        # without it, the plugin sees EVS_ENOTFOUND and the log says what to do
        r = self.run_cli(*args)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("give --plugin-dir DIR with create-webhook.so in it", r.stdout)
        self.assertIn("create-webhook: not found", r.stdout)

    def test_actions_and_refusals(self):
        echo = os.path.join(env("EVS_TEST_PLUGINS_DIR"), "echo.so")
        r = self.run_cli(echo, "--action", "--input", '{"a":[1,2]}', "--connection", self.conn,
                         "--providers", env("EVS_PROVIDERS"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('output: {"a":[1,2]}', r.stdout)
        # the wrong kind, an unknown provider, a missing catalogue: clear errors
        r = self.run_cli(echo, "--event", "post-connection-creation", "--connection", self.conn,
                         "--providers", env("EVS_PROVIDERS"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("is an action: run it with --action", r.stderr)
        r = self.run_cli(*self.event_args()[:-2][:-2], "--providers", "/nonexistent.yaml")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent.yaml: No such file or directory", r.stderr)
        r = self.run_cli(self.so, "--event", "post-connection-creation", "--connection", self.conn)
        self.assertEqual(r.returncode, 1)
        self.assertIn("give the providers catalogue with --providers FILE", r.stderr)


if __name__ == "__main__":
    unittest.main()
