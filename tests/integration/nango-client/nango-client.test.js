// Run: npm ci --prefix tests/integration/nango-client && \
//      EVSCRIPT_URL=http://127.0.0.1:3003 EVSCRIPT_SECRET_KEY=... \
//      EVSCRIPT_TEST_INTEGRATION=<integration with no scripts> \
//      EVSCRIPT_TEST_ACTION_INTEGRATION=<integration with the echo action> EVSCRIPT_TEST_ACTION=<echo action name> \
//      node --test tests/integration/nango-client
//
// Drives a live evscriptd with the official Nango node client (@nangohq/node, pinned in package.json) and checks
// the contract of docs/api.md. Connections are created with API_KEY credentials unless EVSCRIPT_TEST_CREDENTIALS
// holds another credentials object as JSON (its type must match both integrations' providers). The echo action
// must return its input unchanged. Every required variable missing is a failure, not a skip.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Nango } from '@nangohq/node';

const env = (name) => {
    const v = process.env[name];
    if (!v) {
        throw new Error(`${name} is not set (see the first lines of ${import.meta.url})`);
    }
    return v;
};

const URL_BASE = env('EVSCRIPT_URL').replace(/\/+$/, '');
const SECRET = env('EVSCRIPT_SECRET_KEY');
const INTEGRATION = env('EVSCRIPT_TEST_INTEGRATION');
const ACTION_INTEGRATION = env('EVSCRIPT_TEST_ACTION_INTEGRATION');
const ACTION = env('EVSCRIPT_TEST_ACTION');
const RUN = `${process.pid}-${Date.now()}`;
const CREDENTIALS = process.env.EVSCRIPT_TEST_CREDENTIALS
    ? JSON.parse(process.env.EVSCRIPT_TEST_CREDENTIALS)
    : { type: 'API_KEY', apiKey: `test-key-${RUN}` };

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+00:00)$/;

const nango = new Nango({ host: URL_BASE, secretKey: SECRET });

// POST /connections has no method in the client: plain fetch, as a user would do with curl.
async function importConnection(body) {
    const res = await fetch(`${URL_BASE}/connections`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${SECRET}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body)
    });
    const text = await res.text();
    let json;
    try {
        json = JSON.parse(text);
    } catch {
        assert.fail(`POST /connections answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, body: json };
}

// The client rejects non-2xx with an AxiosError; check status and evscript's error envelope.
async function assertApiError(promise, status, code) {
    await assert.rejects(promise, (err) => {
        assert.ok(err.response, `expected an HTTP error, got: ${err}`);
        assert.equal(err.response.status, status);
        assert.equal(typeof err.response.data?.error?.code, 'string', 'error body must be {"error":{"code",...}}');
        assert.equal(typeof err.response.data.error.message, 'string');
        if (code) {
            assert.equal(err.response.data.error.code, code);
        }
        return true;
    });
}

function assertCredentials(actual, sent) {
    assert.equal(typeof actual, 'object');
    for (const [k, v] of Object.entries(sent)) {
        assert.deepEqual(actual[k], v, `credentials.${k}`);
    }
}

function assertFullConnection(c, connectionId, providerConfigKey) {
    assert.equal(typeof c.id, 'number', 'id');
    assert.equal(c.connection_id, connectionId);
    assert.equal(c.provider_config_key, providerConfigKey);
    assert.equal(typeof c.provider, 'string');
    assert.ok(c.provider.length > 0, 'provider is not empty');
    assert.match(c.created_at, ISO_MS);
    assert.match(c.updated_at, ISO_MS);
    assert.ok(Date.parse(c.updated_at) >= Date.parse(c.created_at), 'updated_at >= created_at');
    assert.equal(typeof c.connection_config, 'object');
    assert.notEqual(c.connection_config, null);
    assert.ok('metadata' in c, 'metadata is present');
    assert.deepEqual(c.errors, []);
    assert.equal(c.end_user, null);
    assertCredentials(c.credentials, CREDENTIALS);
}

describe('official @nangohq/node client against evscriptd', { concurrency: false }, () => {
    const connId = `nango-client-${RUN}`;
    const actionConnId = `nango-client-action-${RUN}`;
    const initialMetadata = { origin: 'import', keep: false };

    before(async () => {
        const created = await importConnection({
            connection_id: connId,
            provider_config_key: INTEGRATION,
            credentials: CREDENTIALS,
            metadata: initialMetadata
        });
        assert.equal(created.status, 201, `POST /connections: ${JSON.stringify(created.body)}`);
        assertFullConnection(created.body, connId, INTEGRATION);
        assert.deepEqual(created.body.metadata, initialMetadata);

        const createdAction = await importConnection({
            connection_id: actionConnId,
            provider_config_key: ACTION_INTEGRATION,
            credentials: CREDENTIALS
        });
        assert.equal(createdAction.status, 201, `POST /connections: ${JSON.stringify(createdAction.body)}`);
        assertFullConnection(createdAction.body, actionConnId, ACTION_INTEGRATION);
    });

    after(async () => {
        // Leave nothing behind when an assertion stopped the sequence early; a 404 is the normal case here.
        for (const [k, id] of [
            [INTEGRATION, connId],
            [ACTION_INTEGRATION, actionConnId]
        ]) {
            await nango.deleteConnection(k, id).catch(() => {});
        }
    });

    test('a wrong secret key is refused with 401 and the error envelope', async () => {
        const wrong = new Nango({ host: URL_BASE, secretKey: `${SECRET}-wrong` });
        await assertApiError(wrong.listConnections(), 401);
        await assertApiError(wrong.getConnection(INTEGRATION, connId), 401);
    });

    test('listConnections lists the imported connection', async () => {
        const all = await nango.listConnections();
        assert.ok(Array.isArray(all.connections), 'body is {"connections":[...]}');
        const mine = all.connections.filter((c) => c.connection_id === connId);
        assert.equal(mine.length, 1);
        const c = mine[0];
        assert.equal(c.provider_config_key, INTEGRATION);
        assert.equal(typeof c.id, 'number');
        assert.equal(typeof c.provider, 'string');
        assert.match(c.created, ISO_MS);
        assert.deepEqual(c.metadata, initialMetadata);
        assert.equal(c.credentials, undefined, 'the list carries no credentials');
        assert.ok(all.connections.some((x) => x.connection_id === actionConnId), 'second connection listed too');

        const filtered = await nango.listConnections(connId);
        assert.equal(filtered.connections.length, 1, 'connectionId filter is an exact match');
        assert.equal(filtered.connections[0].connection_id, connId);
    });

    test('getConnection returns the full connection with credentials', async () => {
        const c = await nango.getConnection(INTEGRATION, connId);
        assertFullConnection(c, connId, INTEGRATION);
        assert.deepEqual(c.metadata, initialMetadata);
    });

    test('setMetadata replaces, updateMetadata merges, getMetadata reads back', async () => {
        const first = { plan: 'pro', seats: 5, nested: { a: 1, b: [1, 2] } };
        const set = await nango.setMetadata(INTEGRATION, connId, first);
        assert.equal(set.status, 201);
        assert.deepEqual(set.data, { metadata: first, connection_id: connId, provider_config_key: INTEGRATION });
        assert.deepEqual(await nango.getMetadata(INTEGRATION, connId), first, 'set replaced the imported metadata');

        const patch = { seats: 7, region: 'eu', nested: { c: 3 } };
        const upd = await nango.updateMetadata(INTEGRATION, connId, patch);
        assert.equal(upd.status, 200);
        assert.deepEqual(upd.data, { metadata: patch, connection_id: connId, provider_config_key: INTEGRATION });
        // Shallow merge: top-level keys of the patch replace, the others stay.
        assert.deepEqual(await nango.getMetadata(INTEGRATION, connId), {
            plan: 'pro',
            seats: 7,
            region: 'eu',
            nested: { c: 3 }
        });

        await assertApiError(nango.setMetadata(INTEGRATION, `${connId}-missing`, { x: 1 }), 404, 'unknown_connection');
        await assertApiError(
            nango.updateMetadata(INTEGRATION, [connId, `${connId}-missing`], { untouched: true }),
            404,
            'unknown_connection'
        );
        const after404 = await nango.getMetadata(INTEGRATION, connId);
        assert.equal(after404.untouched, undefined, 'a failed array update changes nothing');
    });

    test('triggerAction runs the echo action and returns its output as the body', async () => {
        const input = { message: 'hello', n: 42, nested: { list: [1, 2, 3], ok: true }, text: 'é ✓ "q"' };
        const out = await nango.triggerAction(ACTION_INTEGRATION, actionConnId, ACTION, input);
        assert.deepEqual(out, input);

        assert.deepEqual(await nango.triggerAction(ACTION_INTEGRATION, actionConnId, ACTION, [1, 'two']), [1, 'two']);
        // No input: the client sends {"action_name":...} only; the action gets null and echoes it.
        assert.equal(await nango.triggerAction(ACTION_INTEGRATION, actionConnId, ACTION), null);

        await assertApiError(
            nango.triggerAction(ACTION_INTEGRATION, actionConnId, `${ACTION}-no-such-action`, input),
            404,
            'not_found'
        );
        await assertApiError(
            nango.triggerAction(ACTION_INTEGRATION, `${actionConnId}-missing`, ACTION, input),
            404,
            'unknown_connection'
        );
    });

    test('deleteConnection deletes; the connection is gone afterwards', async () => {
        const del = await nango.deleteConnection(INTEGRATION, connId);
        assert.equal(del.status, 200);
        assert.deepEqual(del.data, { success: true });

        await assertApiError(nango.getConnection(INTEGRATION, connId), 404, 'not_found');
        await assertApiError(nango.getMetadata(INTEGRATION, connId), 404, 'not_found');
        await assertApiError(nango.deleteConnection(INTEGRATION, connId), 404, 'unknown_connection');
        const all = await nango.listConnections(connId);
        assert.deepEqual(all.connections, []);

        const delAction = await nango.deleteConnection(ACTION_INTEGRATION, actionConnId);
        assert.equal(delAction.status, 200);
        await assertApiError(nango.getConnection(ACTION_INTEGRATION, actionConnId), 404, 'not_found');
    });
});
