// Shared by the WebSocket end-to-end test and bench: the server process, WebSocket clients
// (Node's `ws` package, an independent implementation), bounded waits.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Polls `fn` every `stepMs` until it returns something truthy or `seconds` pass; returns
/// the value, or undefined on timeout.
export async function waitFor(seconds, fn, stepMs = 25) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() >= deadline) {
      return undefined;
    }
    await sleep(stepMs);
  }
}

/// A free loopback port below the kernel's ephemeral range (as scripts/lib/common.sh's
/// si_free_port), so that no outgoing connection, e.g. one of the bench's clients, holds it.
export async function freePort() {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
  } catch {
    // keep the default
  }
  const span = Math.max(100, low - 10000);
  for (let i = 0; i < 200; i += 1) {
    const port = 10000 + Math.floor(Math.random() * span);
    const free = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      return port;
    }
  }
  throw new Error('no free port');
}

/// The server binary on a fresh loopback port and a fresh SQLite database.
export class Server {
  constructor(binary, dir, env) {
    this.binary = binary;
    this.dir = dir;
    this.env = env;
    this.exit = null;
  }

  async start(readySeconds = 30) {
    fs.mkdirSync(this.dir, { recursive: true });
    this.port = await freePort();
    this.logPath = path.join(this.dir, 'log');
    this.reportPath = path.join(this.dir, 'report.json');
    const log = fs.openSync(this.logPath, 'w');
    this.proc = spawn(this.binary, [], {
      cwd: this.dir,
      env: {
        PATH: process.env.PATH,
        HOME: this.dir,
        LOG_FORMAT: 'json',
        HOST: '127.0.0.1',
        PORT: String(this.port),
        DATABASE_URL: `sqlite://${path.join(this.dir, 'si.db')}`,
        SHUTDOWN_REPORT_PATH: this.reportPath,
        ...this.env,
      },
      stdio: ['ignore', 'ignore', log],
    });
    fs.closeSync(log);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal, at: performance.now() };
        resolve(this.exit);
      });
    });
    const ready = await waitFor(readySeconds, () => this.exit || this.log().includes('"msg":"ready'));
    if (!ready || this.exit) {
      throw new Error(`server did not become ready:\n${this.log().split('\n').slice(-20).join('\n')}`);
    }
    return this;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  url(p) {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  wsUrl(query = '') {
    return `ws://127.0.0.1:${this.port}/ws${query}`;
  }

  /// Value of one Prometheus sample (`name{labels}` exactly as rendered), 0 when absent.
  async metric(sample) {
    const text = await (await fetch(this.url('/metrics'))).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(`${sample} `)) {
        return Number(line.slice(sample.length + 1));
      }
    }
    return 0;
  }

  async post(p, body, headers = {}) {
    const r = await fetch(this.url(p), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }

  /// Sends `signal` and waits (bounded) for the exit: {code, signal, at}, or null.
  async stop(signal = 'SIGTERM', seconds = 30) {
    if (!this.exit) {
      this.proc.kill(signal);
    }
    const done = await Promise.race([this.exited, sleep(seconds * 1000).then(() => null)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    return done;
  }

  kill() {
    if (this.proc && !this.exit) {
      this.proc.kill('SIGKILL');
    }
  }

  report() {
    return JSON.parse(fs.readFileSync(this.reportPath, 'utf8'));
  }
}

const control = new Set(['connected', 'subscription_confirm', 'pong', 'error']);

/// One WebSocket client that records every message (parsed, with its arrival time) and its
/// close. `raw` keeps text only for messages parse() cannot read cheaply (see bench).
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.closeInfo = null;
    this.waiters = [];
    this.onText = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: performance.now() };
        resolve(this.closeInfo);
        this.wake();
      });
    });
    ws.on('message', (data) => {
      const at = performance.now();
      if (this.onText && this.onText(data, at)) {
        return;
      }
      let m;
      try {
        m = JSON.parse(data.toString());
      } catch {
        m = { type: '<unparsable>', text: data.toString() };
      }
      m._at = at;
      this.messages.push(m);
      this.wake();
    });
    ws.on('error', () => {});
  }

  /// Connects; resolves with a Client once open, or rejects with {status, body} when the
  /// upgrade is refused (or {error} on a socket error).
  static connect(url, seconds = 10) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: seconds * 1000 });
      const client = new Client(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          let parsed = null;
          try {
            parsed = JSON.parse(body);
          } catch {
            parsed = body;
          }
          reject({ status: res.statusCode, body: parsed, headers: res.headers });
          ws.terminate();
        });
      });
      ws.once('error', (error) => reject({ error: String(error) }));
    });
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      w();
    }
  }

  /// The first recorded message matching `pred` (after `from`), waiting at most `seconds`.
  async next(pred, seconds = 5, from = 0) {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const found = this.messages.slice(from).find(pred);
      if (found) {
        return found;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closeInfo) {
        return this.messages.slice(from).find(pred);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ofType(type) {
    return this.messages.filter((m) => m.type === type);
  }

  /// Types of the channel messages received (the protocol's control replies left out).
  channelTypes() {
    return [...new Set(this.messages.filter((m) => !control.has(m.type)).map((m) => m.type))];
  }

  send(message) {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /// Subscribes and waits for the confirmation.
  async subscribe(channels, seconds = 5) {
    const from = this.messages.length;
    this.send({ type: 'subscribe', channels });
    return this.next((m) => m.type === 'subscription_confirm' || m.type === 'error', seconds, from);
  }

  /// Waits (bounded) for the close; null on timeout.
  async waitClosed(seconds = 5) {
    return Promise.race([this.closed, sleep(seconds * 1000).then(() => null)]);
  }

  close(code = 1000) {
    this.ws.close(code);
  }
}

/// Percentile of sorted numbers (nearest rank).
export function percentile(sorted, p) {
  if (sorted.length === 0) {
    return NaN;
  }
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}
