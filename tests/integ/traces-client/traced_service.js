#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// traced_service.js: a service with its own tracer, run by `shoal up` (tests/integ/
// traces_up_test.py). On GET /work it continues the trace of the incoming W3C `traceparent`
// (the proxy's span is the parent) with a SERVER span of its own, exports it with the
// OpenTelemetry JS SDK's OTLP/HTTP protobuf exporter to the admin API named by SHOAL_ADDR, with
// the instance's own SHOAL_TOKEN, and answers {"traceId", "spanId", "parentSpanId", "export":
// [results], "readStatus": the status of a read with that token}. GET /health answers 200.
// Env: PORT, SHOAL_ADDR, SHOAL_TOKEN, SHOAL_SERVICE (all set by shoal up).
"use strict";

const http = require("http");
const api = require("@opentelemetry/api");
const { W3CTraceContextPropagator } = require("@opentelemetry/core");
const { TracerProvider, SimpleSpanProcessor } = require("@opentelemetry/sdk-trace");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");

const ADDR = process.env.SHOAL_ADDR;
const TOKEN = process.env.SHOAL_TOKEN;
const SERVICE = process.env.SHOAL_SERVICE || "worker";
const results = [];
const exporter = new OTLPTraceExporter({
  url: `http://${ADDR}/v1/traces`,
  headers: { Authorization: `Bearer ${TOKEN}` },
});
const provider = new TracerProvider({
  resource: resourceFromAttributes({ "service.name": SERVICE }),
  spanProcessors: [
    new SimpleSpanProcessor({
      exporter: {
        export(spans, cb) {
          exporter.export(spans, (r) => {
            results.push({ code: r.code, error: r.error ? String(r.error) : undefined });
            cb(r);
          });
        },
        shutdown: () => exporter.shutdown(),
        forceFlush: () => exporter.forceFlush(),
      },
    }),
  ],
});
const tracer = provider.getTracer("shoal-traced-service", "1.0.0");
const propagator = new W3CTraceContextPropagator();
const getter = { keys: (h) => Object.keys(h), get: (h, k) => h[k] };

function readStatus() {
  return new Promise((resolve) => {
    const [host, port] = ADDR.split(":");
    const req = http.get(
      { host, port, path: "/api/v2/services", headers: { Authorization: `Bearer ${TOKEN}` } },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on("error", () => resolve(0));
  });
}

async function work(req, res) {
  const parent = propagator.extract(api.context.active(), req.headers, getter);
  const parentSpan = api.trace.getSpanContext(parent);
  const span = tracer.startSpan(
    "GET /work",
    { kind: api.SpanKind.SERVER, attributes: { "http.request.method": "GET", "url.path": "/work" } },
    parent,
  );
  await new Promise((r) => setTimeout(r, 5));
  span.end();
  const n = results.length;
  await provider.forceFlush();
  const deadline = Date.now() + 10000;
  while (results.length === n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const body = JSON.stringify({
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: parentSpan ? parentSpan.spanId : null,
    export: results.slice(n),
    readStatus: await readStatus(),
  });
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(body + "\n");
}

http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200);
      res.end("ok\n");
    } else if (req.url.startsWith("/work")) {
      work(req, res).catch((err) => {
        res.writeHead(500);
        res.end(String(err) + "\n");
      });
    } else {
      res.writeHead(404);
      res.end();
    }
  })
  .listen(Number(process.env.PORT), "127.0.0.1", () => console.log(`${SERVICE} listening`));
