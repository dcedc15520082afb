// WebSocket fan-out bench clients (scripts/bench/ws.sh runs it; not a test).
// Usage: node bench.mjs PORT SERVER_PID CLIENTS GRACE_MS ROUNDS [WORKERS]
// WORKERS client processes (default 2) open CLIENTS connections between them, all
// subscribed to `alerts`. The coordinator measures the server's RSS per idle connection,
// triggers ROUNDS broadcasts through the test-only POST /api/v1/test/broadcast and collects
// trigger → delivery at every client, then sends SIGTERM to the server and collects
// SIGTERM → each client's close (server_shutdown first, then close 1001). Times are
// absolute (performance.timeOrigin + now) so that they compare across processes. Prints JSON.
// WS_ROUND_GAP_MS (default 300, checked by ws.sh): the pause between broadcasts.

import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { percentile, sleep } from './lib.mjs';

const now = () => performance.timeOrigin + performance.now();
const roundGapMs = Number(process.env.WS_ROUND_GAP_MS ?? 300);

// ---------------------------------------------------------------------------------------
// Worker: `count` clients; reports when each round is complete and when all have closed.
async function worker(port, count) {
  const received = new Map();  // round → times
  const shutdownAt = new Array(count);
  const closedAt = new Array(count);
  const codes = new Array(count);
  let closed = 0;
  const open = (i) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
    ws.on('open', () => ws.send('{"type":"subscribe","channels":["alerts"]}'));
    ws.on('message', (data) => {
      const at = now();
      // Keys come sorted ("data" < "timestamp" < "type"): a broadcast starts with its data.
      const head = data.subarray(0, 40).toString();
      if (head.startsWith('{"data":{"round":')) {
        const round = Number(/"round":(\d+)/.exec(head)[1]);
        if (!received.has(round)) {
          received.set(round, []);
        }
        const times = received.get(round);
        times.push(at);
        if (times.length === count) {
          process.send({ kind: 'round', round, times });
        }
        return;
      }
      const { type } = JSON.parse(data.toString());
      if (type === 'subscription_confirm') {
        resolve(ws);
      } else if (type === 'server_shutdown') {
        shutdownAt[i] = at;
      }
    });
    ws.on('close', (code) => {
      closedAt[i] = now();
      codes[i] = code;
      closed += 1;
      if (closed === count) {
        process.send({ kind: 'closed', shutdownAt, closedAt, codes });
      }
    });
    ws.on('error', reject);
  });
  const clients = [];
  for (let next = 0; next < count;) {
    const batch = [];
    for (let k = 0; k < 128 && next < count; k += 1, next += 1) {
      batch.push(open(next));
    }
    clients.push(...(await Promise.all(batch)));
  }
  process.send({ kind: 'ready' });
}

if (process.argv[2] === '--worker') {
  await worker(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const [port, pid, count, graceMs, rounds, workersArg] = process.argv.slice(2).map(Number);
  const workers = workersArg || 2;
  const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

  /// The trigger and /metrics share one kept-alive connection, opened before the first
  /// broadcast (a publisher holds its connection: setting one up is not part of a broadcast)
  /// and destroyed before the SIGTERM, so no idle HTTP connection is left for the drain.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (path, body) => new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });

  const events = [];
  let wake = null;
  const nextEvents = async (kind, n, seconds) => {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const got = events.filter((e) => e.kind === kind);
      if (got.length >= n) {
        for (const e of got) {
          events.splice(events.indexOf(e), 1);
        }
        return got;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${n} '${kind}' reports (got ${got.length})`);
      }
      await new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  const before = rssKiB();
  const t0 = now();
  const self = fileURLToPath(import.meta.url);
  const children = [];
  for (let w = 0; w < workers; w += 1) {
    const share = Math.floor(count / workers) + (w < count % workers ? 1 : 0);
    const child = fork(self, ['--worker', String(port), String(share)]);
    child.on('message', (m) => {
      events.push(m);
      if (wake) {
        wake();
      }
    });
    children.push(child);
  }
  await nextEvents('ready', workers, 120);
  const connectMs = now() - t0;
  // Opens the kept-alive connection (any answer will do: it is not looked at).
  await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/health', agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
  await sleep(1000);  // let the server settle (allocator, first reads)
  const after = rssKiB();

  const results = [];
  for (let round = 0; round < rounds; round += 1) {
    const start = now();
    const r = await post('/api/v1/test/broadcast', { channels: ['alerts'], data: { round } });
    // The route answers once the hub has queued the message for every subscriber.
    const queuedMs = now() - start;
    const { queued } = JSON.parse(r.body);
    const reports = await nextEvents('round', workers, 30);
    const lat = reports.flatMap((x) => x.times).map((x) => x - start).sort((a, b) => a - b);
    results.push({ queued, queued_ms: queuedMs, delivered: lat.length, first: lat[0],
      p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[lat.length - 1] });
    await sleep(roundGapMs);
  }
  const p99s = results.map((x) => x.p99).sort((a, b) => a - b);
  // The hub's own share: time to queue one message for every subscriber.
  const metrics = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
      let text = '';
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
  const sample = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
  const fanoutMs = (1000 * sample('si_ws_fanout_seconds_sum')) / sample('si_ws_fanout_seconds_count');

  agent.destroy();  // before the SIGTERM: the server's drain waits for no connection of ours
  const term = now();
  process.kill(pid, 'SIGTERM');
  const closes = await nextEvents('closed', workers, 60);
  const closedAt = closes.flatMap((x) => x.closedAt);
  const shutdownAt = closes.flatMap((x) => x.shutdownAt).filter((x) => x !== undefined);
  const codes = closes.flatMap((x) => x.codes);
  const gaps = closes.flatMap((x) => x.closedAt.map((c, i) => c - x.shutdownAt[i]))
    .filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  for (const c of children) {
    c.kill();
  }
  console.log(JSON.stringify({
    clients: count,
    workers,
    connect_ms: Math.round(connectMs),
    rss_before_kib: before,
    rss_after_kib: after,
    rss_per_connection_kib: (after - before) / count,
    rounds: results,
    p99_median_round_ms: p99s[Math.floor(p99s.length / 2)],
    hub_fanout_mean_ms: fanoutMs,
    notified: shutdownAt.length,
    closed: closedAt.length,
    closed_1001: codes.filter((c) => c === 1001).length,
    sigterm_to_first_shutdown_ms: Math.min(...shutdownAt) - term,
    sigterm_to_last_shutdown_ms: Math.max(...shutdownAt) - term,
    shutdown_to_close_min_ms: gaps[0],
    sigterm_to_all_closed_ms: Math.max(...closedAt) - term,
    grace_ms: graceMs,
  }));
  process.exit(0);
}
