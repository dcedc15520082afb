// Webhook receiver of tests/process/webhooks.sh and scripts/bench/webhooks.sh.
//
// Verifies every delivery independently of the server's code with the `standardwebhooks`
// package (HMAC-SHA256 over "id.timestamp.body", timestamp tolerance) and records, per
// endpoint name, every request: its webhook-id, timestamp, event type and data, whether the
// signature verified, and what was answered. Endpoints are POST /hook/<name>; how each one
// answers is set through the control API:
//
//   POST /_config {name, secret, mode, status?, fail_first?, delay_ms?}
//        mode "ok"    → `status` (default 204)
//             "fail"  → 500 always
//             "gone"  → 410 Gone
//             "flaky" → 500 for the first `fail_first` attempts of each webhook-id, then 204
//        delay_ms     → answer that much later (a slow endpoint)
//   GET  /_stats?name=N     → {requests, verified, invalid, distinct, in_progress,
//                              max_in_progress, first_at_ms, last_at_ms}
//   GET  /_requests?name=N  → [{id, ts, type, data, verified, status, at_ms}] (not with --bench)
//   GET  /_ids?name=N       → {"<webhook-id>": count, ...}
//
// An unknown name is answered 404, a signature that does not verify 401; both are recorded.
// Usage: node receiver.mjs --port-file FILE [--bench]   (listens on 127.0.0.1, port 0)
// With --bench only counters and distinct ids are kept (no request log).

import http from "node:http";
import fs from "node:fs";
import { Webhook } from "standardwebhooks";

const args = process.argv.slice(2);
const portFile = args[args.indexOf("--port-file") + 1];
const bench = args.includes("--bench");
if (!portFile || args.indexOf("--port-file") < 0) {
  console.error("usage: node receiver.mjs --port-file FILE [--bench]");
  process.exit(2);
}

/** name → {config, verifier, stats, ids: Map, attempts: Map, log: []} */
const endpoints = new Map();

function endpoint(name) {
  let e = endpoints.get(name);
  if (!e) {
    e = {
      config: null,
      verifier: null,
      stats: {
        requests: 0,
        verified: 0,
        invalid: 0,
        in_progress: 0,
        max_in_progress: 0,
        first_at_ms: null,
        last_at_ms: null,
      },
      ids: new Map(),
      log: [],
    };
    endpoints.set(name, e);
  }
  return e;
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function onHook(req, res, name) {
  const body = await readBody(req);
  const e = endpoint(name);
  const now = Date.now();
  e.stats.first_at_ms ??= now;
  e.stats.last_at_ms = now;
  e.stats.requests++;
  e.stats.in_progress++;
  e.stats.max_in_progress = Math.max(e.stats.max_in_progress, e.stats.in_progress);
  const id = req.headers["webhook-id"] || "";
  const ts = req.headers["webhook-timestamp"] || "";
  let verified = false;
  let payload = null;
  if (e.verifier) {
    try {
      payload = e.verifier.verify(body, {
        "webhook-id": id,
        "webhook-timestamp": ts,
        "webhook-signature": req.headers["webhook-signature"] || "",
      });
      verified = true;
    } catch {
      verified = false;
    }
  }
  if (verified) {
    e.stats.verified++;
  } else {
    e.stats.invalid++;
  }
  const seen = (e.ids.get(id) || 0) + 1;
  e.ids.set(id, seen);
  const cfg = e.config;
  let status;
  if (!cfg) {
    status = 404;
  } else if (!verified) {
    status = 401;
  } else if (cfg.mode === "fail") {
    status = 500;
  } else if (cfg.mode === "gone") {
    status = 410;
  } else if (cfg.mode === "flaky") {
    status = seen <= (cfg.fail_first || 0) ? 500 : 204;
  } else {
    status = cfg.status || 204;
  }
  if (!bench) {
    e.log.push({
      id,
      ts: Number(ts),
      type: payload ? payload.type : null,
      data: payload ? payload.data : null,
      verified,
      status,
      at_ms: Date.now(),
    });
  }
  const answer = () => {
    e.stats.in_progress--;
    res.writeHead(status, { "content-length": 0 });
    res.end();
  };
  if (cfg && cfg.delay_ms > 0) {
    setTimeout(answer, cfg.delay_ms);
  } else {
    answer();
  }
}

async function onControl(req, res, url) {
  const name = url.searchParams.get("name") || "";
  if (req.method === "POST" && url.pathname === "/_config") {
    const cfg = JSON.parse(await readBody(req));
    const e = endpoint(cfg.name);
    e.config = cfg;
    e.verifier = new Webhook(cfg.secret);
    return json(res, 200, { ok: true });
  }
  const e = endpoint(name);
  if (url.pathname === "/_stats") {
    return json(res, 200, { ...e.stats, distinct: e.ids.size });
  }
  if (url.pathname === "/_requests") {
    return json(res, 200, e.log);
  }
  if (url.pathname === "/_ids") {
    return json(res, 200, Object.fromEntries(e.ids));
  }
  return json(res, 404, { error: "no such control route" });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://receiver");
  const m = /^\/hook\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
  const work = m && req.method === "POST" ? onHook(req, res, m[1]) : onControl(req, res, url);
  work.catch((err) => json(res, 500, { error: String(err) }));
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => {
  const tmp = `${portFile}.tmp`;
  fs.writeFileSync(tmp, String(server.address().port));
  fs.renameSync(tmp, portFile);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
