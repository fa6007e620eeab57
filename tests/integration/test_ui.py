"""GET /ui, the monitoring page (issue 14), in headless Chromium driven by
chromedriver over plain HTTP (the W3C WebDriver protocol, no client
library): log in with the secret key, see a new connection's execution
appear and its logs follow live, filter the list, reload and see a refusal.
A screenshot is saved to <build>/test-artifacts/ui.png.

The gated test plugin keeps the execution running (its first line logged)
until the test opens the gate at the fake provider.
"""

import base64
import json
import os
import shutil
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import SECRET, DaemonTest, env, free_port, wait_for
from test_cli_remote import NANGO  # the same two integrations: demo (hello) and gate (gated)


CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium")


class WebDriver:
    """The few W3C WebDriver commands the test needs, over urllib."""

    def __init__(self):
        self.port = free_port()
        self.log = open(os.path.join(env("EVS_BUILD_DIR"), "test-artifacts", "chromedriver.log"), "w")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(self._ready, 30, interval=0.05, what="chromedriver")
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900"]}}
        self.sid = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status")["ready"]
        except (OSError, urllib.error.URLError):
            return False

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.load(resp)["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.sid}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/clear", {})
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return png

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(30)
            self.log.close()


ROWS = "return [...document.querySelectorAll('#executions tr')].map(tr => " \
       "({id: Number(tr.dataset.id), status: tr.dataset.status, cells: [...tr.children].map(td => td.innerText)}));"


@unittest.skipUnless(CHROMEDRIVER and CHROMIUM, "chromium and chromium-driver (scripts/install-deps.sh)")
class UiTest(DaemonTest):
    def setUp(self):
        super().setUp()
        os.makedirs(os.path.join(env("EVS_BUILD_DIR"), "test-artifacts"), exist_ok=True)
        self.d = self.daemon(NANGO, plugins=["hello"], test_plugins=["gated"])
        self.wd = WebDriver()
        self.addCleanup(self.wd.quit)

    def connect(self, integration, cid):
        status, _, body = self.d.create_connection(integration, cid,
                                                   connection_config={"port": str(self.provider.port)})
        self.assertEqual(status, 201, body)

    def rows(self):
        return self.wd.js(ROWS)

    def test_page_is_public_static_and_locked_down(self):
        status, hdrs, body = self.d.request("GET", "/ui", auth=False)
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/html"), hdrs)
        self.assertIn("default-src 'none'", hdrs["Content-Security-Policy"])
        self.assertIn("<title>evscript</title>", body)
        self.assertNotIn(SECRET, body)

    def test_executions_and_live_logs_in_chromium(self):
        wd, d = self.wd, self.d
        self.provider.route("GET", "/gate", {"status": 404, "body": "closed"})
        self.connect("demo", "before")
        d.wait_executions(1)
        wd.go(d.url + "/ui")
        wait_for(lambda: wd.js("return !document.getElementById('login').hidden"), 30, what="the key form")
        # a wrong key is refused, the right one opens the page
        wd.type("#secret", "wrong")
        wd.click("#login-button")
        wait_for(lambda: "401" in (wd.text("#login-error") or ""), 30, what="the refusal")
        wd.type("#secret", SECRET)
        wd.click("#login-button")
        wait_for(lambda: wd.js("return !document.getElementById('app').hidden"), 30, what="the page")
        self.assertIsNotNone(wd.js("return sessionStorage.getItem('evscript-secret')"))
        wait_for(lambda: any(r["cells"][4] == "before" and r["status"] == "succeeded" for r in self.rows()),
                 30, what="the earlier execution")
        wait_for(lambda: "gated 1.0.0" in (wd.text("#plugins-loaded") or ""), 30, what="the plugins")
        self.assertEqual(wd.text("#health"), "ok")

        # a new connection: its execution appears, running, on top
        self.connect("gate", "ui-1")
        row = wait_for(lambda: [r for r in self.rows() if r["cells"][4] == "ui-1"], 30, what="the new execution")[0]
        self.assertEqual(row["status"], "running")
        self.assertEqual(self.rows()[0]["id"], row["id"])  # newest first
        # its logs, followed while it runs
        wd.click(f"#executions tr[data-id='{row['id']}']")
        wait_for(lambda: "waiting at the gate for ui-1" in (wd.text("#logs") or ""), 30, what="the first line")
        self.assertEqual(d.execution(row["id"])["status"], "running")
        self.assertEqual(wd.text("#detail-state"), "(following)")
        wd.screenshot(os.path.join(env("EVS_BUILD_DIR"), "test-artifacts", "ui-running.png"))
        self.provider.route("GET", "/gate", {"status": 200, "body": "open"})
        wait_for(lambda: "through the gate" in (wd.text("#logs") or ""), 30, what="the second line")
        wait_for(lambda: wd.text("#detail-state") == "(succeeded)", 30, what="the end")
        wait_for(lambda: [r for r in self.rows() if r["id"] == row["id"] and r["status"] == "succeeded"], 30,
                 what="the row's new status")
        png = wd.screenshot(os.path.join(env("EVS_BUILD_DIR"), "test-artifacts", "ui.png"))
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))

        # filters: only the demo integration
        wd.type("#f-integration", "demo")
        wait_for(lambda: (lambda rs: rs and all(r["cells"][3] == "demo" for r in rs))(self.rows()), 30,
                 what="the filtered list")

        # reload with a tampered plugin: the refusal shows
        with open(os.path.join(d.plugin_dir, "gated.so"), "ab") as f:
            f.write(b"\0")
        wd.click("#reload")
        wait_for(lambda: "bad signature" in (wd.text("#reload-result") or ""), 60, what="the reload's outcome")
        wait_for(lambda: "gated.so: bad_signature" in (wd.text("#plugins-refused") or ""), 30,
                 what="the refusal in the plugin list")


if __name__ == "__main__":
    unittest.main()
