#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// send_traces.js: real tracers send spans to a running shoal admin API, as an application
// would: the OpenTelemetry JS SDK with its OTLP/HTTP exporters (JSON, and gzip'd protobuf) and
// zipkin-js with zipkin-transport-http (Zipkin v2 JSON). Each tracer records one small trace:
// a SERVER span of ~30 ms with a CLIENT child (to a remote service) and, for OTel, a child
// that fails (status ERROR, an event). Waits until every export was answered, then prints
// one JSON object on stdout: {"otel_json": {...}, "otel_proto": {...}, "zipkin": {...}},
// each with traceId, the service name and the export results. Exits 1 when an export failed.
// Usage: node send_traces.js http://127.0.0.1:PORT TOKEN [WHICH...]
//   WHICH: otel_json, otel_proto, zipkin (default: all); "bench N BATCH" is bench/.
"use strict";

const api = require("@opentelemetry/api");
const { TracerProvider, SimpleSpanProcessor } = require("@opentelemetry/sdk-trace");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { OTLPTraceExporter: OTLPHttpExporter } = require("@opentelemetry/exporter-trace-otlp-http");
const { OTLPTraceExporter: OTLPProtoExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
const zipkin = require("zipkin");
const { HttpLogger } = require("zipkin-transport-http");

const BASE = process.argv[2];
const TOKEN = process.argv[3];
const WHICH = process.argv.slice(4);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The exporter's results (0 = SUCCESS) are kept: the SDK itself only logs failures.
function recording(exporter, results) {
  return {
    export(spans, cb) {
      exporter.export(spans, (r) => {
        results.push({ code: r.code, error: r.error ? String(r.error) : undefined });
        cb(r);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush(),
  };
}

async function otel(kind) {
  const service = kind === "json" ? "otel-json-svc" : "otel-proto-svc";
  const Exporter = kind === "json" ? OTLPHttpExporter : OTLPProtoExporter;
  const results = [];
  // the protobuf exporter compresses (gzip), as the OTel Collector's otlphttp exporter does
  const exporter = new Exporter({
    url: `${BASE}/v1/traces`,
    headers: { Authorization: `Bearer ${TOKEN}` },
    compression: kind === "json" ? "none" : "gzip",
  });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": service, "deployment.environment": "test" }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: recording(exporter, results) })],
  });
  const tracer = provider.getTracer("shoal-traces-test", "1.0.0");
  const root = tracer.startSpan("GET /orders", {
    kind: api.SpanKind.SERVER,
    attributes: { "http.request.method": "GET", "url.path": "/orders", "http.response.status_code": 200 },
  });
  const ctx = api.trace.setSpan(api.context.active(), root);
  const client = tracer.startSpan(
    "GET /stock",
    { kind: api.SpanKind.CLIENT, attributes: { "peer.service": "inventory", "server.port": 8080 } },
    ctx,
  );
  await sleep(10);
  client.end();
  const failing = tracer.startSpan("charge", { kind: api.SpanKind.INTERNAL }, ctx);
  failing.addEvent("retrying", { attempt: 2 });
  failing.setStatus({ code: api.SpanStatusCode.ERROR, message: "card declined" });
  failing.end();
  await sleep(20);
  root.end();
  await provider.forceFlush();
  await provider.shutdown();
  return { traceId: root.spanContext().traceId, service, results };
}

async function zipkinJs() {
  const service = "zipkin-js-svc";
  const results = [];
  const logger = new HttpLogger({
    endpoint: `${BASE}/api/v2/spans`,
    jsonEncoder: zipkin.jsonEncoder.JSON_V2,
    headers: { Authorization: `Bearer ${TOKEN}` },
    httpInterval: 50,
  });
  logger.on("success", (res) => results.push({ status: res.status }));
  logger.on("error", (err) => results.push({ error: String(err) }));
  const tracer = new zipkin.Tracer({
    ctxImpl: new zipkin.ExplicitContext(),
    recorder: new zipkin.BatchRecorder({ logger }),
    localServiceName: service,
  });
  const rootId = tracer.createRootId(new zipkin.option.Some(true));
  tracer.setId(rootId);
  tracer.recordServiceName(service);
  tracer.recordRpc("get /pay");
  tracer.recordAnnotation(new zipkin.Annotation.ServerRecv());
  tracer.recordBinary("http.path", "/pay");
  const childId = tracer.createChildId();
  tracer.setId(childId);
  tracer.recordServiceName(service);
  tracer.recordRpc("post /charge");
  tracer.recordAnnotation(new zipkin.Annotation.ClientSend());
  tracer.recordAnnotation(new zipkin.Annotation.ServerAddr({ serviceName: "payments" }));
  await sleep(10);
  tracer.recordAnnotation(new zipkin.Annotation.ClientRecv());
  tracer.setId(rootId);
  await sleep(20);
  tracer.recordAnnotation(new zipkin.Annotation.ServerSend());
  const deadline = Date.now() + 10000;
  while (results.length === 0 && Date.now() < deadline) await sleep(20);
  return { traceId: rootId.traceId, service, results };
}

async function main() {
  const out = {};
  const all = WHICH.length === 0;
  let ok = true;
  if (all || WHICH.includes("otel_json")) out.otel_json = await otel("json");
  if (all || WHICH.includes("otel_proto")) out.otel_proto = await otel("proto");
  if (all || WHICH.includes("zipkin")) out.zipkin = await zipkinJs();
  for (const [name, r] of Object.entries(out)) {
    const good = r.results.length > 0 && r.results.every((x) => x.code === 0 || x.status === 202);
    if (!good) {
      ok = false;
      console.error(`${name}: export failed: ${JSON.stringify(r.results)}`);
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
