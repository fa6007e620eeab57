// Run by tests/integration/test_credentials.py (not by `node --test` of this directory): the official client's
// get, post, put, patch, delete, proxy and getToken against evscriptd's /proxy API and GET /connections/{id},
// for OAUTH2 (an expired token that gets refreshed), OAUTH2_CC, API_KEY with a missing optional header, and
// BASIC with a ${base64(...)} header. The provider API and token endpoints are the test's fake provider on
// EVSCRIPT_PROVIDER_PORT; integrations oauth-it, cc-it, key-it and basic-it are the test's.

import assert from 'node:assert/strict';
import { test } from 'node:test';

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
const PORT = Number(env('EVSCRIPT_PROVIDER_PORT'));
const nango = new Nango({ host: URL_BASE, secretKey: SECRET });

async function importConnection(pck, cid, credentials) {
    const res = await fetch(`${URL_BASE}/connections`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${SECRET}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ provider_config_key: pck, connection_id: cid, credentials, connection_config: { port: PORT } })
    });
    assert.equal(res.status, 201, await res.text());
}

test('OAUTH2: an expired token is refreshed, then get, post, proxy and getToken use it', async () => {
    await importConnection('oauth-it', 'node-oauth', {
        type: 'OAUTH2', access_token: 'expired', refresh_token: 'r1', expires_at: '2020-01-01T00:00:00Z'
    });
    const me = await nango.get({ endpoint: '/me', providerConfigKey: 'oauth-it', connectionId: 'node-oauth' });
    assert.equal(me.status, 200);
    assert.equal(me.data.seen.authorization, 'Bearer client-new-1');
    const posted = await nango.post({
        endpoint: '/items', providerConfigKey: 'oauth-it', connectionId: 'node-oauth', data: { n: 1 }, params: { q: 'v' }
    });
    assert.equal(posted.status, 201);
    assert.deepEqual(JSON.parse(posted.data.got), { n: 1 });
    assert.equal(posted.headers['x-item'], '7');
    const viaProxy = await nango.proxy({
        method: 'GET', endpoint: '/me', providerConfigKey: 'oauth-it', connectionId: 'node-oauth',
        headers: { 'X-From-Client': 'yes' }, retries: 1
    });
    assert.equal(viaProxy.data.seen['x-from-client'], 'yes');
    assert.equal(await nango.getToken('oauth-it', 'node-oauth'), 'client-new-1');
    for (const verb of ['put', 'patch', 'delete']) {
        const res = await nango[verb]({ endpoint: '/items/1', providerConfigKey: 'oauth-it', connectionId: 'node-oauth',
            data: { verb } });
        assert.equal(res.data.method, verb.toUpperCase());
        assert.deepEqual(JSON.parse(res.data.got), { verb });
    }
});

test('OAUTH2_CC: the client-credentials token', async () => {
    await importConnection('cc-it', 'node-cc', { type: 'OAUTH2_CC', token: 'old', client_id: 'a', client_secret: 'b',
        expires_at: '2020-01-01T00:00:00Z' });
    const me = await nango.get({ endpoint: '/me', providerConfigKey: 'cc-it', connectionId: 'node-cc' });
    assert.equal(me.data.seen.authorization, 'Bearer cc-node');
    const creds = await nango.getToken('cc-it', 'node-cc');
    assert.equal(creds.type, 'OAUTH2_CC');
    assert.equal(creds.token, 'cc-node');
});

test('API_KEY: the optional header is left out', async () => {
    await importConnection('key-it', 'node-key', { type: 'API_KEY', apiKey: 'node-key-1' });
    const me = await nango.get({ endpoint: '/me', providerConfigKey: 'key-it', connectionId: 'node-key' });
    assert.equal(me.data.seen['x-api-key'], 'node-key-1');
    assert.equal(me.data.seen['x-tenant'], undefined);
    const creds = await nango.getToken('key-it', 'node-key');
    assert.equal(creds.apiKey, 'node-key-1');
});

test('BASIC: a ${base64(...)} header', async () => {
    await importConnection('basic-it', 'node-basic', { type: 'BASIC', username: 'u', password: 'p' });
    const me = await nango.get({ endpoint: '/me', providerConfigKey: 'basic-it', connectionId: 'node-basic' });
    assert.equal(me.data.seen.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
});
