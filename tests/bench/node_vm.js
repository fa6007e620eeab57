// The baseline Nango's model implies: each execution of a trivial event
// script in a fresh vm context (vm.Script.runInContext), as Nango runs event
// scripts. Prints one JSON line: {"name", "kind", "node", "n", "p50_us",
// "p99_us", "per_s"} (tests/bench/table.py reads it).
'use strict';
const vm = require('node:vm');

const n = Number(process.argv[2] || 2000);
const source = `
  (function onEvent(nango, event) {
    nango.log('info', event.name + ' for connection ' + event.connectionId);
    return 0;
  })(nango, event)`;
const script = new vm.Script(source);
const lines = [];
const nango = { log: (level, msg) => { if (lines.length < 4) lines.push(msg); } };
const times = [];

for (let i = 0; i < n + 100; i++) {
  const t0 = process.hrtime.bigint();
  const ctx = vm.createContext({
    nango,
    event: { name: 'post-connection-creation', connectionId: 'c' + i },
  });
  const rc = script.runInContext(ctx);
  const t1 = process.hrtime.bigint();
  if (rc !== 0) throw new Error('script failed');
  if (i >= 100) times.push(Number(t1 - t0) / 1000); // warm-up excluded
}
times.sort((a, b) => a - b);
const total = times.reduce((a, b) => a + b, 0);
console.log(JSON.stringify({
  name: 'Node vm: fresh context per execution',
  kind: 'node',
  node: process.version,
  n,
  p50_us: times[Math.floor(n * 0.5)],
  p99_us: times[Math.floor(n * 0.99)],
  per_s: n / (total / 1e6),
}));
