// End-to-end test of /ws against the real server binary with an independent client (Node's
// `ws`). Usage: node e2e.mjs SERVER_BINARY SIM_URL WORK_DIR
//   A (limits server, no Horizon): token 401, connected, ping/pong, protocol errors, oversize
//     1009, rate limit error + 1008, connection limit 503, SIGTERM with a client that never
//     answers the close (dropped at the hub's deadline, still exit 0).
//   B (against the Horizon simulator): real new_payment / corridor_update / pool_update /
//     anchor_update traffic reaches only the subscribers of each channel, corridor:<id>,
//     alerts (test route), a stalled client among 100 readers, SIGTERM: server_shutdown then
//     a clean 1001 close for every client, exit 0, ws_hub ok in the shutdown report.
// Every wait is bounded; everything listens on 127.0.0.1.

import path from 'node:path';
import { Client, Server, percentile, sleep, waitFor } from './lib.mjs';

const [binary, simUrl, work] = process.argv.slice(2);
if (!binary || !simUrl || !work) {
  console.error('usage: node e2e.mjs SERVER_BINARY SIM_URL WORK_DIR');
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    console.log(`ok   - ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL - ${name}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
  return ok;
}

const servers = [];
function server(name, env) {
  const s = new Server(binary, path.join(work, name), env);
  servers.push(s);
  return s;
}

async function refused(url) {
  try {
    const c = await Client.connect(url);
    c.close();
    return { status: 101 };
  } catch (e) {
    return e;
  }
}

const actorOf = (report, name) => report.actors.find((a) => a.actor === name);

// ---------------------------------------------------------------------------------------
async function limits() {
  const s = server('limits', {
    HORIZON_URL: 'http://127.0.0.1:9',
    INGEST_ENABLED: 'false',
    SYNC_ENABLED: 'false',
    WS_AUTH_TOKEN: 'e2e-s3cret',
    WS_MAX_CONNECTIONS: '3',
    WS_MAX_MESSAGE_BYTES: '1024',
    WS_MESSAGE_RATE: '5',
    WS_RECONNECT_AFTER_MS: '750',
    SHUTDOWN_WS_GRACE_MS: '300',
    SHUTDOWN_WS_TIMEOUT: '1.5',
  });
  await s.start();
  const url = (token = 'e2e-s3cret') => s.wsUrl(token === null ? '' : `?token=${token}`);

  let r = await refused(url(null));
  check('A: no token → 401 UNAUTHORIZED', r.status === 401 && r.body?.error?.code === 'UNAUTHORIZED', r);
  r = await refused(url('wrong'));
  check('A: wrong token → 401', r.status === 401, r);

  const c1 = await Client.connect(url());
  const hello = await c1.next((m) => m.type === 'connected');
  check('A: connected with a numeric connection_id', Number.isInteger(hello?.connection_id), hello);

  c1.send({ type: 'ping', timestamp: 1732550400123 });
  const pong = await c1.next((m) => m.type === 'pong');
  check('A: ping → pong with the same timestamp', pong?.timestamp === 1732550400123, pong);

  const errors = [];
  for (const bad of ['{nope', '{"type":"dance"}', '{"type":"subscribe","channels":["weather"]}']) {
    const from = c1.messages.length;
    c1.send(bad);
    errors.push((await c1.next((m) => m.type === 'error', 5, from))?.message);
  }
  check('A: invalid JSON, unknown type, unknown channel → error {message}',
    errors[0] === 'invalid JSON' && errors[1] === "unknown message type 'dance'"
      && errors[2] === "unknown channel 'weather'", errors);
  const ok = await c1.subscribe(['payments', 'alerts']);
  check('A: the connection survives errors; subscribe confirmed',
    ok?.type === 'subscription_confirm' && ok.status === 'subscribed', ok);

  const c2 = await Client.connect(url());
  c2.send('x'.repeat(2000));
  const big = await c2.waitClosed();
  check('A: a message over WS_MAX_MESSAGE_BYTES → close 1009', big?.code === 1009, big);

  const c3 = await Client.connect(url());
  await c3.next((m) => m.type === 'connected');
  for (let i = 0; i < 20; i += 1) {
    c3.send({ type: 'ping', timestamp: i });
  }
  const limited = await c3.waitClosed();
  const rateError = c3.ofType('error')[0];
  check('A: over WS_MESSAGE_RATE → error then close 1008',
    rateError?.message === 'rate limit exceeded: at most 5 messages per second'
      && limited?.code === 1008 && c3.ofType('pong').length === 5,
    { rateError, limited, pongs: c3.ofType('pong').length });

  // Both ended on the server (their slots are free) once the hub's gauge says 1.
  await waitFor(5, async () => (await s.metric('si_ws_connections')) === 1);
  const c4 = await Client.connect(url());
  const c5 = await Client.connect(url());
  r = await refused(url());
  check('A: past WS_MAX_CONNECTIONS → 503 TOO_MANY_CONNECTIONS',
    r.status === 503 && r.body?.error?.code === 'TOO_MANY_CONNECTIONS', r);
  check('A: refusal counted in /metrics',
    (await s.metric('si_ws_upgrades_refused_total{reason="full"}')) === 1
      && (await s.metric('si_ws_upgrades_refused_total{reason="auth"}')) === 2);
  const metricsText = await (await fetch(s.url('/metrics'))).text();
  check('A: /metrics shows the hub and transport counters',
    ['si_ws_connections 3', 'si_ws_transport_open_connections 3',
      'si_ws_transport_closes_total{reason="oversize"} 1',
      'si_ws_rate_limit_closes_total 1'].every((l) => metricsText.includes(l)));

  // SIGTERM: c5 never reads again, so it never answers the close: dropped at the deadline.
  await c4.next((m) => m.type === 'connected');
  await c5.next((m) => m.type === 'connected');
  c5.ws.pause();
  const t0 = performance.now();
  const exit = await s.stop('SIGTERM');
  const [s1, s4] = [c1, c4].map((c) => c.ofType('server_shutdown')[0]);
  const [x1, x4] = await Promise.all([c1.waitClosed(), c4.waitClosed()]);
  check('A: responsive clients: server_shutdown (reconnect_after_ms 750) then 1001',
    s1?.reconnect_after_ms === 750 && s4?.reconnect_after_ms === 750 && x1?.code === 1001
      && x4?.code === 1001, { s1, x1, x4 });
  check('A: exit 0 with a client that never answered', exit?.code === 0, exit);
  check('A: exit bounded by the hub deadline (1.5 s)', exit && exit.at - t0 < 3000,
    exit && exit.at - t0);
  const report = s.report();
  const hub = actorOf(report, 'ws_hub');
  const counts = hub?.counts ?? {};
  check('A: ws_hub ok: 3 connections, 3 notified, 2 closed cleanly, 1 dropped',
    hub?.outcome === 'ok' && counts.connections === 3 && counts.notified === 3
      && counts.closed_cleanly === 2 && counts.dropped === 1, hub);
  c5.ws.resume();
  c5.ws.terminate();
}

// ---------------------------------------------------------------------------------------
async function channels() {
  const env = {
    HORIZON_URL: simUrl,
    HORIZON_RATE_LIMIT: '0',
    INGEST_START_LEDGER: '1000',
    INGEST_POLL_INTERVAL_MS: '50',
    INGEST_BACKOFF_MIN_MS: '20',
    INGEST_BACKOFF_MAX_MS: '200',
    SYNC_METRICS_INTERVAL: '0.5',
    SYNC_POOLS_INTERVAL: '4',
    SYNC_TRUSTLINES_INTERVAL: '60',
    HTTP_TEST_ROUTES: 'true',
    ADMIN_API_TOKEN: 'e2e-admin',
    WS_MESSAGE_RATE: '100',
    WS_MAX_CONNECTIONS: '500',
    WS_RECONNECT_AFTER_MS: '1200',
    SHUTDOWN_WS_GRACE_MS: '300',
    // Idle keep-alive connections (fetch's pool) are closed after 50 ms of the HTTP drain.
    SHUTDOWN_IDLE_WINDOW_MS: '50',
  };
  // pool_update is sent when a pool's figures differ from what this process last published,
  // and the simulator's pools do not move: a first run stores them, then a restart on the
  // same database publishes them on its first pools run, due 4 s after the last one, while
  // the clients below listen.
  const first = server('channels', env);
  await first.start();
  const pooled = await waitFor(20, async () => (await (await fetch(first.url('/api/v1/liquidity-pools'))).json()).total > 0);
  check('B: a first run synced the pools', !!pooled);
  await first.stop('SIGTERM');
  const s = server('channels', env);
  await s.start();
  const subscribers = {};
  for (const [name, chans] of [['payments', ['payments']], ['corridors', ['corridors']],
    ['pools', ['pools']], ['anchors', ['anchors']], ['alerts', ['alerts']], ['none', null]]) {
    const c = await Client.connect(s.wsUrl());
    await c.next((m) => m.type === 'connected');
    if (chans) {
      const conf = await c.subscribe(chans);
      check(`B: ${name} subscription confirmed`, conf?.status === 'subscribed', conf);
    }
    subscribers[name] = c;
  }
  // A new anchor: the next metrics run reads it back and publishes it.
  const created = await s.post('/api/v1/anchors', {
    name: 'E2E Anchor', stellar_account: 'GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN',
  }, { Authorization: 'Bearer e2e-admin' });
  check('B: anchor created', created.status === 201, created);

  const want = { payments: 'new_payment', corridors: 'corridor_update', pools: 'pool_update',
    anchors: 'anchor_update' };
  for (const [name, type] of Object.entries(want)) {
    const m = await subscribers[name].next((x) => x.type === type, 30);
    check(`B: real ${type} delivered on ${name}`, !!m);
  }
  const sent = await s.post('/api/v1/test/broadcast', { channels: ['alerts'], data: { n: 1 } });
  check('B: test broadcast queued for exactly the alerts subscriber', sent.body?.queued === 1, sent);
  check('B: alerts subscriber gets it',
    !!(await subscribers.alerts.next((m) => m.type === 'test_broadcast', 5)));
  await sleep(1500);  // more real traffic, to see that nothing leaks across channels
  const allowed = { ...want, alerts: 'test_broadcast' };
  for (const [name, c] of Object.entries(subscribers)) {
    const types = c.channelTypes();
    const expected = name === 'none' ? [] : [allowed[name]];
    const extra = types.filter((t) => !expected.includes(t) && !(name === 'alerts' && t === 'health_alert'));
    check(`B: ${name} received only its channel's messages (${types.join(',') || 'none'})`,
      extra.length === 0, types);
  }
  const pay = subscribers.payments.ofType('new_payment')[0]?.data ?? {};
  check('B: new_payment carries the operation (ids, accounts, exact amounts, corridor)',
    /^\d+$/.test(pay.id) && /^G[A-Z2-7]{55}$/.test(pay.from) && /^G[A-Z2-7]{55}$/.test(pay.to)
      && (pay.amount === null || /^\d+\.\d{7}$/.test(pay.amount))
      && pay.corridor_id === `${pay.source_asset}->${pay.destination_asset}`, pay);
  const anchor = subscribers.anchors.ofType('anchor_update').find((m) => m.data?.name === 'E2E Anchor');
  check('B: anchor_update is the anchor as the REST API shows it', !!anchor
    && anchor.data.stellar_account === 'GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN');
  const pool = subscribers.pools.ofType('pool_update')[0]?.data ?? {};
  const restPool = await (await fetch(s.url(`/api/v1/liquidity-pools/${pool.pool_id}`))).json();
  check('B: no subscriber was closed by the server',
    Object.values(subscribers).every((c) => c.closeInfo === null),
    Object.entries(subscribers).filter(([, c]) => c.closeInfo).map(([n, c]) => [n, c.closeInfo]));
  check('B: pool_update has the REST pool figures',
    pool.pool_id && restPool.pool_id === pool.pool_id && restPool.fee_bp === pool.fee_bp,
    { pool, restPool });

  // corridor:<id>: the corridor updated most often so far.
  const counts = {};
  for (const m of subscribers.corridors.ofType('corridor_update')) {
    counts[m.data.id] = (counts[m.data.id] ?? 0) + 1;
  }
  const id = Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0];
  const one = await Client.connect(s.wsUrl());
  const conf = await one.subscribe([`corridor:${id}`]);
  check('B: corridor:<id> subscription confirmed', conf?.channels?.[0] === `corridor:${id}`, conf);
  const upd = await one.next((m) => m.type === 'corridor_update', 30);
  check(`B: corridor:${id} gets that corridor's updates only`, !!upd
    && one.ofType('corridor_update').every((m) => m.data.id === id), one.channelTypes());
  one.close();
  for (const c of Object.values(subscribers)) {
    c.close();
  }
  await Promise.all([one, ...Object.values(subscribers)].map((c) => c.waitClosed()));

  // --- a stalled client among 100 readers: it overflows alone, the others get everything
  const readers = [];
  for (let i = 0; i < 100; i += 1) {
    readers.push(Client.connect(s.wsUrl()));
  }
  const ready = await Promise.all(readers);
  const stalled = await Client.connect(s.wsUrl());
  for (const c of [...ready, stalled]) {
    c.seen = [];
    c.onText = (data, at) => {
      const head = data.subarray(0, 32).toString();
      const m = /^\{"data":\{"n":(\d+)/.exec(head);
      if (!m) {
        return false;
      }
      c.seen.push([Number(m[1]), at]);
      return true;
    };
  }
  await Promise.all([...ready, stalled].map((c) => c.subscribe(['alerts'])));
  stalled.ws.pause();
  // The stalled client's kernel buffers fill, then its queue (1 MiB of 32 KiB messages):
  // it overflows and is closed; the flood goes on a little after that.
  const pad = 'x'.repeat(32 * 1024);
  const postedAt = [];
  const slowBefore = await s.metric('si_ws_slow_client_closes_total');
  let n = 0;
  let overflowAt = -1;
  while (n < 1000 && (overflowAt < 0 || n < overflowAt + 20)) {
    postedAt[n] = performance.now();
    const r = await s.post('/api/v1/test/broadcast', { channels: ['alerts'], data: { n, pad } });
    if (r.status !== 200) {
      break;
    }
    n += 1;
    if (overflowAt < 0 && n % 10 === 0
        && (await s.metric('si_ws_slow_client_closes_total')) > slowBefore) {
      overflowAt = n;
    }
  }
  check(`B: the stalled client overflowed (after ${overflowAt} messages of 32 KiB)`, overflowAt > 0);
  const complete = await waitFor(20, () => ready.every((c) => c.seen.length === n));
  const lags = [];
  let inOrder = true;
  for (const c of ready) {
    c.seen.forEach(([seq, at], i) => {
      inOrder &&= seq === i;
      lags.push(at - postedAt[seq]);
    });
  }
  lags.sort((a, b) => a - b);
  check(`B: all 100 readers got all ${n} messages, in order`, !!complete && inOrder,
    ready.map((c) => c.seen.length).filter((x) => x !== n).slice(0, 5));
  const p99 = percentile(lags, 99);
  console.log(`# readers' delivery lag over ${lags.length} deliveries: p50 ${percentile(lags, 50).toFixed(1)} ms, `
    + `p99 ${p99.toFixed(1)} ms, max ${lags[lags.length - 1].toFixed(1)} ms`);
  check('B: readers were not held up by the stalled client (p99 lag < 1 s)', p99 < 1000, p99);
  stalled.ws.resume();
  const gone = await stalled.waitClosed(10);
  check('B: the stalled client was closed with 1008 (send queue overflow)', gone?.code === 1008, gone);
  await waitFor(10, async () => (await s.metric('si_ws_connections')) === 100);

  // --- SIGTERM: every client gets server_shutdown, then a clean 1001 close
  for (const c of ready) {
    c.onText = null;
  }
  const t0 = performance.now();
  const exit = await s.stop('SIGTERM');
  const closes = await Promise.all(ready.map((c) => c.waitClosed(5)));
  const shutdowns = ready.map((c) => c.ofType('server_shutdown')[0]);
  check('B: every client got server_shutdown with reconnect_after_ms 1200',
    shutdowns.every((m) => m?.reconnect_after_ms === 1200 && typeof m.message === 'string'));
  check('B: every client then got close 1001', closes.every((x) => x?.code === 1001),
    closes.filter((x) => x?.code !== 1001).slice(0, 3));
  const gaps = ready.map((c, i) => closes[i].at - shutdowns[i]._at).sort((a, b) => a - b);
  check(`B: the close came after the 300 ms grace (min gap ${gaps[0]?.toFixed(0)} ms)`,
    gaps[0] >= 250, gaps[0]);
  const lastClose = Math.max(...closes.map((x) => x.at)) - t0;
  console.log(`# SIGTERM → all 100 closed with 1001: ${lastClose.toFixed(0)} ms (grace 300 ms)`);
  check('B: all closed within grace + 1 s of SIGTERM', lastClose < 1300, lastClose);
  check('B: exit code 0', exit?.code === 0, exit);
  const report = s.report();
  const hub = actorOf(report, 'ws_hub');
  check('B: ws_hub ok: 100 connections, 100 notified, 100 closed cleanly, 0 dropped',
    hub?.outcome === 'ok' && hub.counts.connections === 100 && hub.counts.notified === 100
      && hub.counts.closed_cleanly === 100 && hub.counts.dropped === 0, hub);
  const gateway = actorOf(report, 'http_gateway');
  check('B: the HTTP drain did not wait for the WebSockets (gateway < 300 ms)',
    gateway?.outcome === 'ok' && gateway.duration_ms < 300, gateway);
  check('B: broadcaster ok', actorOf(report, 'broadcaster')?.outcome === 'ok');
  check('B: every actor ok', report.actors.every((a) => a.outcome === 'ok'),
    report.actors.filter((a) => a.outcome !== 'ok'));
  check('B: summary logged ws_hub ok', s.log().split('\n').some(
    (l) => l.includes('"logger":"shutdown_summary"') && l.includes('actor=ws_hub outcome=ok')));
}

try {
  await limits();
  await channels();
} catch (e) {
  check('no exception', false, String(e?.stack ?? JSON.stringify(e)));
} finally {
  for (const s of servers) {
    s.kill();
  }
}
console.log(`ws_e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
