"""Bad input that json-c would take (issue 15): NaN, infinities, invalid
UTF-8, lone surrogates and NUL in keys are refused with 400 invalid_body and
never stored, so GET /connections stays valid JSON for every client; and an
Idempotency-Key reply, credentials included, is sealed at rest when the daemon
has an encryption key."""

import base64
import json
import os
import sqlite3

import unittest

from harness import STORE, DaemonTest

NANGO = """
integrations:
    demo:
        provider: local-test
"""


class JsonValidation(DaemonTest):
    def post_raw(self, d, raw):
        return d.request("POST", "/connections", raw=raw)

    def body(self, cid, metadata_text):
        return ('{"provider_config_key":"demo","connection_id":"%s",'
                '"credentials":{"type":"API_KEY","apiKey":"k"},"metadata":%s}' % (cid, metadata_text)).encode()

    def test_refused_and_never_stored(self):
        d = self.daemon(NANGO)
        bad = {
            "nan": b'{"a":NaN}',
            "inf": b'{"a":Infinity}',
            "neginf": b'{"a":-Infinity}',
            "huge": b'{"a":1e999}',
            "utf8": b'{"a":"x\xff\xfe"}',
            "overlong": b'{"a":"\xc0\xaf"}',
            "lonehigh": b'{"a":"\\ud800"}',
            "lonelow": b'{"a":"x\\udc00y"}',
            "highhigh": b'{"a":"\\ud800\\ud800"}',
            "nulkey": b'{"a\\u0000b":1}',
            "nulvalue": b'{"a":"x\\u0000y"}',
        }
        for name, meta in bad.items():
            with self.subTest(name):
                raw = self.body("c-" + name, "0").replace(b'"metadata":0', b'"metadata":' + meta)
                status, _, doc = self.post_raw(d, raw)
                self.assertEqual(status, 400, doc)
                self.assertEqual(doc["error"]["code"], "invalid_body", doc)
        # Not JSON at all: comments, single quotes, trailing commas.
        for raw in (b'/*c*/{"a":1}', b"{'a':1}", b'{"a":1,}'):
            status, _, doc = self.post_raw(d, raw)
            self.assertEqual(status, 400, (raw, doc))
            self.assertEqual(doc["error"]["code"], "invalid_json")
        # What is fine: a surrogate pair, escaped control characters, non-ASCII.
        good = '{"emoji":"\\ud83d\\ude00","t":"a\\tb","e":"\u00e9"}'
        status, _, doc = self.post_raw(d, self.body("c-good", "0").replace(
            b'"metadata":0', b'"metadata":' + good.encode()))
        self.assertEqual(status, 201, doc)
        status, _, doc = d.request("GET", "/connections")
        self.assertEqual(status, 200)
        ids = sorted(c["connection_id"] for c in doc["connections"])
        self.assertEqual(ids, ["c-good"])
        status, _, doc = d.request("GET", "/connections/c-good?provider_config_key=demo")
        self.assertEqual(doc["metadata"], {"emoji": "\U0001F600", "t": "a\tb", "e": "\u00e9"})


class SealedIdempotency(DaemonTest):
    @unittest.skipIf(STORE == "pg", "reads the SQLite file; the sealing itself is store.c's, for both back ends")
    def test_reply_sealed_at_rest(self):
        key = base64.b64encode(os.urandom(32)).decode()
        d = self.daemon(NANGO, start=False)
        d.start(extra_env={"EVSCRIPT_ENCRYPTION_KEY": key})
        body = {"provider_config_key": "demo", "connection_id": "c1",
                "credentials": {"type": "API_KEY", "apiKey": "very-secret-api-key"}}
        first = d.request("POST", "/connections", body, headers={"Idempotency-Key": "idem-1"})
        self.assertEqual(first[0], 201, first)
        again = d.request("POST", "/connections", body, headers={"Idempotency-Key": "idem-1"})
        self.assertEqual(again[0], 201)
        self.assertEqual(again[2], first[2])
        db = sqlite3.connect(os.path.join(d.dir, "evscript.db"))
        try:
            (stored,) = db.execute("SELECT body FROM idempotency_keys WHERE key = 'idem-1'").fetchone()
        finally:
            db.close()
        self.assertTrue(stored.startswith("sealed:v1:"), stored)
        self.assertNotIn("very-secret-api-key", stored)
        with open(os.path.join(d.dir, "evscript.db"), "rb") as f:
            self.assertNotIn(b"very-secret-api-key", f.read())
