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
// Tags and asynchronous actions have no PostgreSQL store operations yet (store_backend.h).
const NOT_ON_PG = process.env.EVS_TEST_STORE === 'pg' ? 'no PostgreSQL store operations for it yet' : false;

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

    test('listIntegrations and getIntegration show the configured integrations', async () => {
        const list = await nango.listIntegrations();
        assert.ok(Array.isArray(list.configs), 'the client maps {"data":[...]} to {configs}');
        const mine = list.configs.find((i) => i.unique_key === INTEGRATION);
        assert.ok(mine, `${INTEGRATION} is listed`);
        assert.equal(typeof mine.provider, 'string');
        assert.equal(typeof mine.display_name, 'string');
        assert.equal(typeof mine.logo, 'string');
        assert.match(mine.created_at, ISO_MS);
        assert.ok(list.configs.some((i) => i.unique_key === ACTION_INTEGRATION));

        const one = await nango.getIntegration({ uniqueKey: INTEGRATION }, { include: ['webhook'] });
        assert.equal(one.data.unique_key, INTEGRATION);
        assert.equal(one.data.provider, mine.provider);
        assert.ok(one.data.webhook_url.endsWith(`/webhook/${INTEGRATION}`), one.data.webhook_url);
        await assertApiError(nango.getIntegration({ uniqueKey: `${INTEGRATION}-missing` }), 404, 'not_found');
    });

    test('listProviders and getProvider read the catalogue', async () => {
        const provider = (await nango.getIntegration({ uniqueKey: INTEGRATION })).data.provider;
        const all = await nango.listProviders();
        assert.ok(Array.isArray(all.data));
        const p = all.data.find((x) => x.name === provider);
        assert.ok(p, `${provider} is in the catalogue`);
        assert.equal(typeof p.display_name, 'string');
        assert.equal(typeof p.auth_mode, 'string');
        const searched = await nango.listProviders({ search: provider });
        assert.ok(searched.data.length >= 1 && searched.data.length <= all.data.length);
        assert.ok(searched.data.every((x) => `${x.name} ${x.display_name}`.toLowerCase().includes(provider.toLowerCase())));

        const one = await nango.getProvider({ provider });
        assert.equal(one.data.name, provider);
        assert.equal(one.data.auth_mode, p.auth_mode);
        await assertApiError(nango.getProvider({ provider: `${provider}-missing` }), 404, 'not_found');
    });

    test('patchConnection sets tags and listConnections filters on them', { skip: NOT_ON_PG }, async () => {
        const res = await nango.patchConnection(
            { connectionId: connId, provider_config_key: INTEGRATION },
            { tags: { team: `core-${RUN}`, Env: 'prod' }, webhook_url_override: 'https://example.test/hook' }
        );
        assert.deepEqual(res, { success: true });
        const c = await nango.getConnection(INTEGRATION, connId);
        assert.deepEqual(c.tags, { team: `core-${RUN}`, env: 'prod' }, 'tag keys are stored in lower case');
        assert.equal(c.webhook_url_override, 'https://example.test/hook');

        const hit = await nango.listConnections({ tags: { team: `core-${RUN}` } });
        assert.deepEqual(hit.connections.map((x) => x.connection_id), [connId]);
        assert.deepEqual(hit.connections[0].tags, { team: `core-${RUN}`, env: 'prod' });
        const both = await nango.listConnections({ tags: { team: `core-${RUN}`, env: 'prod' } });
        assert.equal(both.connections.length, 1);
        const miss = await nango.listConnections({ tags: { team: `core-${RUN}`, env: 'dev' } });
        assert.deepEqual(miss.connections, []);

        await assertApiError(
            nango.patchConnection({ connectionId: `${connId}-missing`, provider_config_key: INTEGRATION }, { tags: {} }),
            404,
            'not_found'
        );
        await assertApiError(
            nango.patchConnection({ connectionId: connId, provider_config_key: INTEGRATION }, { tags: { 'bad key': 'x' } }),
            400,
            'invalid_body'
        );
    });

    test('triggerActionAsync answers with an id; getAsyncActionResult gives the output', { skip: NOT_ON_PG }, async () => {
        const input = { async: true, n: 7 };
        const started = await nango.triggerActionAsync(ACTION_INTEGRATION, actionConnId, ACTION, input);
        assert.match(started.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal(started.statusUrl, `/action/${started.id}`);

        // 404 while it runs, as Nango: poll until it is there (bounded by the test's timeout).
        let out;
        for (;;) {
            try {
                out = await nango.getAsyncActionResult({ id: started.id });
                break;
            } catch (err) {
                assert.equal(err.response?.status, 404, `${err}`);
                await new Promise((r) => setTimeout(r, 50));
            }
        }
        assert.deepEqual(out, input);
        assert.deepEqual(await nango.getAsyncActionResult({ statusUrl: started.statusUrl }), input);

        await assertApiError(nango.getAsyncActionResult({ id: '00000000-0000-4000-8000-000000000000' }), 404, 'not_found');
        await assertApiError(nango.getAsyncActionResult({ id: 'not-a-uuid' }), 400, 'invalid_uri_params');
        await assertApiError(
            nango.triggerActionAsync(ACTION_INTEGRATION, actionConnId, `${ACTION}-no-such-action`, input),
            404,
            'not_found'
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
