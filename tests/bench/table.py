#!/usr/bin/env python3
"""Reads the JSON lines of bench_fork_floor, bench_evscript and node_vm.js on
stdin and prints the Markdown table of tests/bench/run.sh: each row's p50 and
p99 in microseconds, executions per second, and its p50 as a ratio to its
floor measured in the same run (isolated rows: the fork floor; in-process
rows: the direct call), and for isolated rows also to Node's vm.

Exits non-zero when a floor or an evscript row is missing (the smoke test
relies on that); the Node row is optional (node may not be installed)."""
import json
import sys

rows = []
for line in sys.stdin:
    line = line.strip()
    if line.startswith('{'):
        rows.append(json.loads(line))

by_kind = {r.get('kind'): r for r in rows if r.get('kind')}
fork = by_kind.get('fork-floor')
call = by_kind.get('call-floor')
node = by_kind.get('node')
evs = [r for r in rows if r.get('floor')]
libs = by_kind.get('fork-libs')
if not fork or not call or len(evs) < 8:
    sys.exit('table.py: missing rows (a benchmark program failed?)')


def ratio(x, base):
    return '%.2fx' % (x['p50_us'] / base['p50_us']) if base and base['p50_us'] > 0 else ''


out = ['| what | p50 µs | p99 µs | executions/s | p50 vs its floor | p50 vs Node vm |',
       '|---|---:|---:|---:|---:|---:|']


def add(r, floor_ratio, node_ratio=''):
    out.append('| %s | %.2f | %.2f | %.0f | %s | %s |' % (
        r['name'], r['p50_us'], r['p99_us'], r['per_s'], floor_ratio, node_ratio))


add(fork, '1.00x (floor)')
if libs:
    add(libs, ratio(libs, fork))
for r in evs:
    if r['floor'] == 'fork':
        add(r, ratio(r, fork), ratio(r, node))
if node:
    add(node, ratio(node, fork) + ' (vs fork floor)', '1.00x')
add(call, '1.00x (floor)')
for r in evs:
    if r['floor'] == 'call':
        add(r, ratio(r, call))
print('\n'.join(out))
print('\nN = %d per row (after a warm-up); %s.' % (
    fork['n'], 'Node ' + node['node'] if node and node.get('node') else 'Node vm row not run'))
