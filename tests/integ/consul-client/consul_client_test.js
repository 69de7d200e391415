#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// consul_client_test.js: shoal server's Consul-compatible API driven by the real npm `consul`
// client (silas/node-consul, pinned in package.json). Starts `shoal server` on 127.0.0.1 with
// a kernel-chosen port, a temp data dir and a token, then exercises the agent, catalog,
// health and KV endpoints and the client's watch helper (blocking queries) exactly as an
// application would. Prints each failing assertion, and a last line "N passed, N failed";
// exits 1 when anything failed.
// Usage: node consul_client_test.js PATH_TO_SHOAL
"use strict";

const assert = require("assert");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");
const { EventEmitter } = require("events");
const http = require("http");

const Consul = require("consul");

const SHOAL = process.argv[2];
const TOKEN = "consul-client-test-token-0123456789";
const START_TIMEOUT_MS = 10000;
// A watch must see a change within this: half its 10 s wait, so a change seen in time was
// pushed by the server, not found at the deadline (no tighter wall-time bound on a busy CI).
const WATCH_DEADLINE_MS = 5000;
const WAIT_MS = 20000; // the deadline of a wait on a condition
let SRV; // the shoal server under test (startServer's answer)

let passed = 0;
let failed = 0;

function ok(name) {
  passed++;
  console.log(`ok   ${name}`);
}

function fail(name, err) {
  failed++;
  const detail = err && err.stack ? err.stack : String(err);
  console.log(`FAIL ${name}\n     ${detail.split("\n").join("\n     ")}`);
}

// One named check: runs fn (which may be async) and records its verdict.
async function check(name, fn) {
  try {
    await fn();
    ok(name);
  } catch (err) {
    let detail = err;
    if (err && err.response) {
      const res = err.response;
      const body = Buffer.isBuffer(res.body) ? res.body.toString() : JSON.stringify(res.body);
      detail = `${err.stack}\n(HTTP ${res.statusCode}: ${body})`;
    }
    fail(name, detail);
  }
}

// A call context that makes the client resolve with [response, data] (as its watch does).
function withResponse() {
  const ctx = new EventEmitter();
  ctx.includeResponse = true;
  return ctx;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The server's count of parked requests (blocking queries, event streams): GET /v1/status.
function parkedNow() {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port: SRV.port, path: "/v1/status" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body).waiting);
        } catch (err) {
          reject(err);
        }
      });
    }).on("error", reject);
  });
}

// Resolves once the server holds n requests parked; rejects after WAIT_MS. Tests wait on this
// instead of sleeping and hoping the request got there.
async function waitParked(n, what) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const now = await parkedNow();
    if (now === n) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${now} parked, want ${n}`);
    await sleep(10);
  }
}

// Starts shoal server; resolves with { proc, port, dir, log }.
function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shoal-consuljs-"));
  const env = { ...process.env };
  delete env.SHOAL_TOKEN;
  const proc = spawn(
    SHOAL,
    ["server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--token", TOKEN],
    { stdio: ["ignore", "ignore", "pipe"], env },
  );
  const log = [];
  return new Promise((resolve, reject) => {
    let pending = "";
    let started = false;
    const timer = setTimeout(() => {
      reject(new Error("shoal server did not start:\n" + log.join("\n")));
    }, START_TIMEOUT_MS);
    proc.on("exit", (code, sig) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`shoal server exited (${code ?? sig}):\n` + log.join("\n")));
      }
    });
    proc.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        log.push(line);
        if (started || !line.includes("control plane listening")) continue;
        let port;
        try {
          port = JSON.parse(line).port;
        } catch (err) {
          port = Number((line.match(/port[=": ]+(\d+)/) || [])[1]);
        }
        started = true;
        clearTimeout(timer);
        resolve({ proc, port, dir, log });
      }
    });
  });
}

function stopServer(srv) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
      fail("shoal server stays up", `it exited early (${srv.proc.exitCode ?? srv.proc.signalCode})`);
      return resolve();
    }
    const kill = setTimeout(() => srv.proc.kill("SIGKILL"), 5000);
    srv.proc.on("exit", (code, sig) => {
      clearTimeout(kill);
      // a crash under the client's traffic shows here even when no call noticed it
      if (code === 0) ok("shoal server stops cleanly on SIGTERM");
      else fail("shoal server stops cleanly on SIGTERM", `it exited with ${code ?? sig}`);
      resolve();
    });
    srv.proc.kill("SIGTERM");
  });
}

// Waits for the next "change" event of watch w whose data satisfies pred, within ms.
function nextChange(w, pred, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      w.removeListener("change", onChange);
      reject(new Error(`watch saw no ${what} within ${ms} ms`));
    }, ms);
    function onChange(data, res) {
      if (!pred(data, res)) return;
      clearTimeout(timer);
      w.removeListener("change", onChange);
      resolve({ data, res });
    }
    w.on("change", onChange);
  });
}

// Starts a watch and resolves once its first answer (the current state) has arrived.
// Resolves once its first answer (the current state) has arrived and its next blocking query
// is parked on the server.
async function startWatch(consul, method, options, errors) {
  await waitParked(0, "no request parked before the watch starts");
  const w = consul.watch({ method, options, maxAttempts: 3 });
  w.on("error", (err) => errors.push(err));
  await nextChange(w, () => true, WAIT_MS, "first answer");
  await waitParked(1, "the watch's blocking query");
  return w;
}

async function run(consul, srv) {
  const svc = "web";
  const id1 = "web-1";
  const id2 = "web-2";

  await check("agent.self names a datacenter", async () => {
    const self = await consul.agent.self();
    assert.strictEqual(typeof self.Config.Datacenter, "string");
    assert.ok(self.Config.NodeName, "Config.NodeName is empty");
  });

  await check("catalog.datacenters lists one", async () => {
    const dcs = await consul.catalog.datacenters();
    assert.ok(Array.isArray(dcs) && dcs.length >= 1, JSON.stringify(dcs));
  });

  await check("dc: the local datacenter answers, another is refused as Consul does", async () => {
    const dc = (await consul.agent.self()).Config.Datacenter;
    assert.ok(Array.isArray(await consul.catalog.service.list({ dc }).then(Object.keys)));
    await assert.rejects(consul.kv.get({ key: "x", dc: "elsewhere" }),
                         (err) => err.response && err.response.statusCode === 500 &&
                                  /No path to datacenter/.test(err.message));
  });

  // ---------------------------------------------------------------- agent: register, checks
  for (const [id, port] of [
    [id1, 8081],
    [id2, 8082],
  ]) {
    await check(`agent.service.register ${id} (tags, meta, TTL check)`, async () => {
      await consul.agent.service.register({
        name: svc,
        id,
        address: "127.0.0.1",
        port,
        tags: ["v2", "http"],
        meta: { version: "2", zone: "a" },
        check: { ttl: "30s", deregistercriticalserviceafter: "10m" },
      });
    });
  }

  await check("a write without the token is refused", async () => {
    const anon = new Consul({ host: "127.0.0.1", port: srv.port });
    try {
      await assert.rejects(
        anon.agent.service.register({ name: "nope", id: "nope-1", port: 1 }),
        (err) => err.response && [401, 403].includes(err.response.statusCode),
      );
    } finally {
      anon.destroy();
    }
  });

  for (const id of [id1, id2]) {
    await check(`agent.check.pass service:${id}`, async () => {
      await consul.agent.check.pass({ id: `service:${id}`, note: "up" });
    });
  }

  await check("catalog.service.list has the service with its tags", async () => {
    const services = await consul.catalog.service.list();
    assert.ok(services && typeof services === "object", JSON.stringify(services));
    assert.ok(Array.isArray(services[svc]), JSON.stringify(services));
    assert.deepStrictEqual([...services[svc]].sort(), ["http", "v2"]);
  });

  await check("catalog.service.nodes has both instances in Consul's shape", async () => {
    const nodes = await consul.catalog.service.nodes(svc);
    assert.ok(Array.isArray(nodes), JSON.stringify(nodes));
    assert.deepStrictEqual(nodes.map((n) => n.ServiceID).sort(), [id1, id2]);
    const n = nodes.find((x) => x.ServiceID === id1);
    assert.strictEqual(n.ServiceName, svc);
    assert.strictEqual(n.ServicePort, 8081);
    assert.strictEqual(n.ServiceAddress, "127.0.0.1");
    assert.ok(n.Node, "Node is empty");
    assert.deepStrictEqual([...n.ServiceTags].sort(), ["http", "v2"]);
    assert.strictEqual(n.ServiceMeta.zone, "a");
    assert.strictEqual(n.ServiceMeta.version, "2");
  });

  await check("catalog.service.nodes with a response reports X-Consul-Index", async () => {
    const [res, nodes] = await consul.catalog.service.nodes({
      service: svc,
      ctx: withResponse(),
    });
    assert.ok(Array.isArray(nodes));
    const meta = Consul.parseQueryMeta(res);
    assert.ok(BigInt(meta.LastIndex) > 0n, JSON.stringify(meta));
    assert.strictEqual(meta.KnownLeader, true);
    assert.strictEqual(meta.LastContact, 0);
  });

  await check("health.service passing lists both passing instances", async () => {
    const entries = await consul.health.service({ service: svc, passing: true });
    assert.deepStrictEqual(entries.map((e) => e.Service.ID).sort(), [id1, id2]);
    const e = entries.find((x) => x.Service.ID === id1);
    assert.strictEqual(e.Service.Service, svc);
    assert.strictEqual(e.Service.Port, 8081);
    assert.strictEqual(e.Service.Meta.zone, "a");
    assert.ok(e.Node.Node, "Node.Node is empty");
    const c = e.Checks.find((x) => x.CheckID === `service:${id1}`);
    assert.ok(c, JSON.stringify(e.Checks));
    assert.strictEqual(c.Status, "passing");
    assert.strictEqual(c.ServiceID, id1);
  });

  await check("agent.check.pass note is the check's Output", async () => {
    const all = await consul.health.service(svc);
    const e = all.find((x) => x.Service.ID === id1);
    assert.strictEqual(e.Checks.find((c) => c.CheckID === `service:${id1}`).Output, "up");
  });

  await check("catalog.service.nodes and health.service filter by tag", async () => {
    await consul.agent.service.register({
      name: svc, id: "web-3", address: "127.0.0.1", port: 8083, tags: ["v1"],
    });
    try {
      const v1 = await consul.catalog.service.nodes({ service: svc, tag: "v1" });
      assert.deepStrictEqual(v1.map((n) => n.ServiceID), ["web-3"]);
      const v2 = await consul.health.service({ service: svc, tag: "v2", passing: true });
      assert.deepStrictEqual(v2.map((e) => e.Service.ID).sort(), [id1, id2]);
      const none = await consul.health.service({ service: svc, tag: "nope" });
      assert.deepStrictEqual(none, []);
    } finally {
      await consul.agent.service.deregister("web-3");
    }
  });

  await check("register with a one-element checks array keeps its TTL check", async () => {
    await consul.agent.service.register({
      name: "arr", id: "arr-1", port: 7001, checks: [{ ttl: "30s" }],
    });
    try {
      const passing = await consul.health.service({ service: "arr", passing: true });
      assert.deepStrictEqual(passing, [], "a TTL check must start critical");
      await consul.agent.check.pass("service:arr-1");
      const now = await consul.health.service({ service: "arr", passing: true });
      assert.deepStrictEqual(now.map((e) => e.Service.ID), ["arr-1"]);
    } finally {
      await consul.agent.service.deregister("arr-1");
    }
  });

  await check("register with check status passing starts passing", async () => {
    await consul.agent.service.register({
      name: "st", id: "st-1", port: 7002, check: { ttl: "30s", status: "passing" },
    });
    try {
      const passing = await consul.health.service({ service: "st", passing: true });
      assert.deepStrictEqual(passing.map((e) => e.Service.ID), ["st-1"]);
    } finally {
      await consul.agent.service.deregister("st-1");
    }
  });

  await check("register again with the same id updates the instance", async () => {
    await consul.agent.service.register({
      name: "re", id: "re-1", port: 7003, tags: ["a"],
    });
    await consul.agent.service.register({
      name: "re", id: "re-1", port: 7004, tags: ["b"],
    });
    try {
      const nodes = await consul.catalog.service.nodes("re");
      assert.strictEqual(nodes.length, 1, JSON.stringify(nodes));
      assert.strictEqual(nodes[0].ServicePort, 7004);
      assert.deepStrictEqual(nodes[0].ServiceTags, ["b"]);
    } finally {
      await consul.agent.service.deregister("re-1");
    }
  });

  await check("unknown service and check ids are refused", async () => {
    await assert.rejects(consul.agent.service.deregister("no-such-id"),
                         (err) => err.response && err.response.statusCode === 404);
    await assert.rejects(consul.agent.check.pass("service:no-such-id"),
                         (err) => err.response && err.response.statusCode === 404);
    assert.deepStrictEqual(await consul.catalog.service.nodes("no-such-service"), []);
    assert.deepStrictEqual(await consul.health.service("no-such-service"), []);
  });

  await check("agent.check.fail takes a TTL instance out of health passing", async () => {
    await consul.agent.check.fail({ id: `service:${id2}`, note: "down" });
    const passing = await consul.health.service({ service: svc, passing: true });
    assert.deepStrictEqual(passing.map((e) => e.Service.ID), [id1]);
    const all = await consul.health.service(svc);
    assert.deepStrictEqual(all.map((e) => e.Service.ID).sort(), [id1, id2]);
    const e = all.find((x) => x.Service.ID === id2);
    assert.strictEqual(e.Checks.find((c) => c.CheckID === `service:${id2}`).Status, "critical");
  });

  await check("agent.check.warn is reported as warning", async () => {
    await consul.agent.check.warn({ id: `service:${id2}` });
    const all = await consul.health.service(svc);
    const e = all.find((x) => x.Service.ID === id2);
    assert.strictEqual(e.Checks.find((c) => c.CheckID === `service:${id2}`).Status, "warning");
  });

  // ---------------------------------------------------------------- KV
  await check("kv.set / kv.get a string", async () => {
    assert.strictEqual(await consul.kv.set("app/config", "hello world"), true);
    const e = await consul.kv.get("app/config");
    assert.ok(e, "kv.get returned nothing");
    assert.strictEqual(e.Key, "app/config");
    assert.strictEqual(e.Value, "hello world");
    assert.strictEqual(e.Flags, 0);
    assert.ok(e.ModifyIndex > 0 && e.CreateIndex > 0, JSON.stringify(e));
  });

  const bin = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x0a]);
  await check("kv.set / kv.get a Buffer (binary, with flags)", async () => {
    assert.strictEqual(await consul.kv.set({ key: "app/blob", value: bin, flags: 42 }), true);
    const e = await consul.kv.get({ key: "app/blob", buffer: true });
    assert.ok(Buffer.isBuffer(e.Value), typeof e.Value);
    assert.ok(e.Value.equals(bin), e.Value.toString("hex"));
    assert.strictEqual(e.Flags, 42);
  });

  await check("kv.get raw returns the bytes", async () => {
    const raw = await consul.kv.get({ key: "app/blob", raw: true });
    assert.ok(Buffer.isBuffer(raw) && raw.equals(bin), String(raw));
  });

  await check("kv.get of a missing key is undefined", async () => {
    assert.strictEqual(await consul.kv.get("app/missing"), undefined);
  });

  await check("kv.get recurse lists the prefix", async () => {
    assert.strictEqual(await consul.kv.set("app/sub/a", "1"), true);
    assert.strictEqual(await consul.kv.set("app/sub/b", "2"), true);
    const list = await consul.kv.get({ key: "app/", recurse: true });
    assert.ok(Array.isArray(list), JSON.stringify(list));
    assert.deepStrictEqual(list.map((e) => e.Key).sort(), [
      "app/blob",
      "app/config",
      "app/sub/a",
      "app/sub/b",
    ]);
    assert.strictEqual(list.find((e) => e.Key === "app/sub/b").Value, "2");
  });

  await check("kv.keys with a separator folds sub-prefixes", async () => {
    const keys = await consul.kv.keys({ key: "app/", separator: "/" });
    assert.deepStrictEqual([...keys].sort(), ["app/blob", "app/config", "app/sub/"]);
    const all = await consul.kv.keys("app/");
    assert.deepStrictEqual([...all].sort(), ["app/blob", "app/config", "app/sub/a", "app/sub/b"]);
  });

  await check("kv.set with a stale cas returns false and leaves the value", async () => {
    const e = await consul.kv.get("app/config");
    assert.strictEqual(await consul.kv.set("app/config", "changed"), true);
    const [res, won] = await consul.kv.set({
      key: "app/config",
      value: "lost",
      cas: e.ModifyIndex,
      ctx: withResponse(),
    });
    assert.strictEqual(res.statusCode, 200);
    assert.strictEqual(won, false);
    // papi (the client's HTTP layer) resolves a body of `false` as undefined when no response
    // is asked for (`!value && maybeValue` in its pipeline); real Consul gets the same.
    assert.ok(!(await consul.kv.set({ key: "app/config", value: "lost", cas: e.ModifyIndex })));
    assert.strictEqual((await consul.kv.get("app/config")).Value, "changed");
  });

  await check("kv.set with the current cas succeeds", async () => {
    const e = await consul.kv.get("app/config");
    assert.strictEqual(
      await consul.kv.set({ key: "app/config", value: "won", cas: e.ModifyIndex }),
      true,
    );
    assert.strictEqual((await consul.kv.get("app/config")).Value, "won");
  });

  await check("kv.set with cas 0 creates only when absent", async () => {
    assert.strictEqual(await consul.kv.set({ key: "app/once", value: "1", cas: 0 }), true);
    const [, won] = await consul.kv.set({ key: "app/once", value: "2", cas: 0, ctx: withResponse() });
    assert.strictEqual(won, false);
    assert.strictEqual((await consul.kv.get("app/once")).Value, "1");
  });

  await check("kv.set of an empty value reads back as null (Consul's shape)", async () => {
    assert.strictEqual(await consul.kv.set("app/empty", ""), true);
    const e = await consul.kv.get("app/empty");
    assert.ok(e, "kv.get returned nothing");
    assert.strictEqual(e.Value, null);
    assert.strictEqual(await consul.kv.del("app/empty"), true);
  });

  await check("kv keys with special characters round-trip", async () => {
    const key = "app/odd?&=+%#:;,key"; // shoal keys are printable ASCII without spaces
    assert.strictEqual(await consul.kv.set(key, "odd"), true);
    const e = await consul.kv.get(key);
    assert.ok(e, "kv.get returned nothing");
    assert.strictEqual(e.Key, key);
    assert.strictEqual(e.Value, "odd");
    assert.strictEqual(await consul.kv.del(key), true);
  });

  await check("kv.keys of the whole store, and of a missing prefix", async () => {
    const all = await consul.kv.keys("");
    assert.ok(all.includes("app/config"), JSON.stringify(all));
    await assert.rejects(consul.kv.keys("nothing/"),
                         (err) => err.response && err.response.statusCode === 404);
  });

  await check("kv.del with cas: stale is refused, current deletes", async () => {
    assert.strictEqual(await consul.kv.set("app/dc", "1"), true);
    const e = await consul.kv.get("app/dc");
    assert.strictEqual(await consul.kv.set("app/dc", "2"), true);
    const [, stale] = await consul.kv.del({ key: "app/dc", cas: e.ModifyIndex, ctx: withResponse() });
    assert.strictEqual(stale, false);
    const cur = await consul.kv.get("app/dc");
    assert.strictEqual(await consul.kv.del({ key: "app/dc", cas: cur.ModifyIndex }), true);
    assert.strictEqual(await consul.kv.get("app/dc"), undefined);
  });

  await check("kv.del removes one key", async () => {
    assert.strictEqual(await consul.kv.del("app/once"), true);
    assert.strictEqual(await consul.kv.get("app/once"), undefined);
  });

  await check("kv.del recurse removes the prefix", async () => {
    assert.strictEqual(await consul.kv.del({ key: "app/sub/", recurse: true }), true);
    assert.strictEqual(await consul.kv.get({ key: "app/sub/", recurse: true }), undefined);
    assert.strictEqual((await consul.kv.get("app/config")).Value, "won");
  });

  // ---------------------------------------------------------------- watch (blocking queries)
  const watchErrors = [];
  await check("watch kv.get sees a KV change within a second", async () => {
    const w = await startWatch(consul, consul.kv.get, { key: "app/config", wait: "10s" },
                               watchErrors);
    try {
      const seen = nextChange(w, (d) => d && d.Value === "watched", WATCH_DEADLINE_MS,
                              "KV change");
      const t0 = Date.now();
      await consul.kv.set("app/config", "watched");
      await seen;
      assert.ok(Date.now() - t0 < WATCH_DEADLINE_MS);
    } finally {
      w.end();
    }
  });

  await check("watch kv.get recurse sees a new key under the prefix", async () => {
    const w = await startWatch(consul, consul.kv.get,
                               { key: "app/", recurse: true, wait: "10s" }, watchErrors);
    try {
      const seen = nextChange(
        w, (d) => Array.isArray(d) && d.some((e) => e.Key === "app/new"), WATCH_DEADLINE_MS,
        "new key under the prefix");
      await consul.kv.set("app/new", "x");
      await seen;
    } finally {
      w.end();
    }
  });

  await check("watch kv.get of a missing key sees it created, then deleted", async () => {
    const w = await startWatch(consul, consul.kv.get, { key: "app/later", wait: "10s" },
                               watchErrors);
    try {
      let seen = nextChange(w, (d) => d && d.Value === "here", WATCH_DEADLINE_MS, "creation");
      await consul.kv.set("app/later", "here");
      await seen;
      await waitParked(1, "the watch's next blocking query");
      seen = nextChange(w, (d) => d === undefined, WATCH_DEADLINE_MS, "deletion");
      await consul.kv.del("app/later");
      await seen;
    } finally {
      w.end();
    }
  });

  await check("watch health.service passing sees an instance fail and recover", async () => {
    await consul.agent.check.pass({ id: `service:${id2}` });
    const w = await startWatch(consul, consul.health.service,
                               { service: svc, passing: true, wait: "10s" }, watchErrors);
    const ids = (d) => (Array.isArray(d) ? d.map((e) => e.Service.ID).sort().join(",") : "");
    try {
      let seen = nextChange(w, (d) => ids(d) === id1, WATCH_DEADLINE_MS, `only ${id1} passing`);
      await consul.agent.check.fail({ id: `service:${id2}` });
      await seen;
      seen = nextChange(w, (d) => ids(d) === `${id1},${id2}`, WATCH_DEADLINE_MS,
                        "both passing again");
      await consul.agent.check.pass({ id: `service:${id2}` });
      await seen;
    } finally {
      w.end();
    }
  });

  await check("watch catalog.service.list sees a new service", async () => {
    const w = await startWatch(consul, consul.catalog.service.list, { wait: "10s" },
                               watchErrors);
    try {
      const seen = nextChange(w, (d) => d && d.api, WATCH_DEADLINE_MS, "new service");
      await consul.agent.service.register({ name: "api", id: "api-1", port: 9000 });
      await seen;
    } finally {
      w.end();
    }
  });

  await check("watch catalog.service.nodes of a service not yet registered sees it", async () => {
    const w = await startWatch(consul, consul.catalog.service.nodes,
                               { service: "late", wait: "10s" }, watchErrors);
    try {
      const seen = nextChange(w, (d) => Array.isArray(d) && d.length === 1, WATCH_DEADLINE_MS,
                              "late registration");
      await consul.agent.service.register({ name: "late", id: "late-1", port: 9001 });
      await seen;
    } finally {
      w.end();
      await consul.agent.service.deregister("late-1");
    }
  });

  await check("kv.get recurse and kv.keys at the root", async () => {
    const all = await consul.kv.get({ key: "", recurse: true });
    assert.ok(Array.isArray(all) && all.some((e) => e.Key === "app/config"), JSON.stringify(all));
    const top = await consul.kv.keys({ key: "", separator: "/" });
    assert.deepStrictEqual(top, ["app/"]);
  });

  await check("blocking queries the client cancels leave the server sound", async () => {
    // watch.end() aborts the parked request: the server must drop its wait, not answer it
    // later on a freed request when the key or service changes
    for (let round = 0; round < 3; round++) {
      const [kres] = await consul.kv.get({ key: "app/config", ctx: withResponse() });
      const [hres] = await consul.health.service({ service: svc, ctx: withResponse() });
      const ctx = new EventEmitter();
      const parked = [
        consul.kv.get({ key: "app/config", index: kres.headers["x-consul-index"], wait: "10s", ctx }),
        consul.health.service({ service: svc, index: hres.headers["x-consul-index"], wait: "10s",
                                ctx }),
      ].map((p) => p.then(() => "answered", () => "canceled"));
      await waitParked(2, "both blocking queries");
      ctx.emit("cancel");
      assert.deepStrictEqual(await Promise.all(parked), ["canceled", "canceled"]);
      await waitParked(0, "the server to drop the canceled queries");
      assert.strictEqual(await consul.kv.set("app/config", `round ${round}`), true);
      await consul.agent.check.warn(`service:${id2}`);
      await consul.agent.check.pass(`service:${id2}`);
      assert.strictEqual((await consul.kv.get("app/config")).Value, `round ${round}`);
    }
    await consul.kv.set("app/config", "watched");
  });

  await check("watches reported no errors", async () => {
    assert.deepStrictEqual(watchErrors.map((e) => String(e)), []);
  });

  await check("a blocking query with an unchanged index waits, then answers", async () => {
    const [res] = await consul.kv.get({ key: "app/config", ctx: withResponse() });
    const index = res.headers["x-consul-index"];
    const t0 = Date.now();
    const [res2, e] = await consul.kv.get({
      key: "app/config",
      index,
      wait: "1s",
      ctx: withResponse(),
    });
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
    assert.strictEqual(res2.headers["x-consul-index"], index);
    assert.strictEqual(e.Value, "watched");
  });

  // ---------------------------------------------------------------- deregister
  await check("agent.service.deregister removes instances from catalog and health", async () => {
    await consul.agent.service.deregister(id2);
    await consul.agent.service.deregister({ id: "api-1" });
    const nodes = await consul.catalog.service.nodes(svc);
    assert.deepStrictEqual(nodes.map((n) => n.ServiceID), [id1]);
    const passing = await consul.health.service({ service: svc, passing: true });
    assert.deepStrictEqual(passing.map((e) => e.Service.ID), [id1]);
    await consul.agent.service.deregister(id1);
    assert.deepStrictEqual(await consul.catalog.service.nodes(svc), []);
    const services = await consul.catalog.service.list();
    assert.ok(!services[svc] && !services.api, JSON.stringify(services));
  });
}

async function main() {
  if (!SHOAL) {
    console.error("usage: node consul_client_test.js PATH_TO_SHOAL");
    process.exit(2);
  }
  let srv;
  try {
    srv = await startServer();
    SRV = srv;
  } catch (err) {
    fail("start shoal server", err);
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
  }
  const consul = new Consul({ host: "127.0.0.1", port: srv.port, defaults: { token: TOKEN } });
  try {
    await run(consul, srv);
  } catch (err) {
    fail("test driver", err);
  } finally {
    consul.destroy();
    await stopServer(srv);
    if (failed) {
      console.log("--- shoal server log (last 40 lines) ---");
      console.log(srv.log.slice(-40).join("\n"));
    }
    fs.rmSync(srv.dir, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
