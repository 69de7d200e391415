/* SPDX-License-Identifier: MIT */
/* test_manifest_schema.c: the shoal.yaml schema: a full manifest read back field by field,
 * every kind of error with its exact file:line:col and words, the gateway document derived
 * from it, `shoal check`'s summary, and out-of-memory torture. */
#include "test_util.h"

#include "supervisor/supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char full[] =
    "name: shop\n"                                                  /* 1 */
    "services:\n"                                                   /* 2 */
    "  api:\n"                                                      /* 3 */
    "    command: ./api --port $PORT 'two words' \"x \\\"y\\\"\"\n" /* 4 */
    "    env: {LOG: debug, N: 3}\n"                                 /* 5 */
    "    working_dir: /srv/api\n"                                   /* 6 */
    "    replicas: 3\n"                                             /* 7 */
    "    port: auto\n"                                              /* 8 */
    "    health: {http: /health, interval: 2s, timeout: 500ms, healthy_threshold: 2,\n"
    "             unhealthy_threshold: 4, start_period: 10s}\n" /* 10 */
    "    depends_on: [db, cache]\n"                             /* 11 */
    "    restart: on-failure\n"                                 /* 12 */
    "    stop_grace: 20s\n"                                     /* 13 */
    "    version: 1.2.0\n"                                      /* 14 */
    "    autoscale: {min: 2, max: 8, target: {p99: 200ms}, up_cooldown: 1m, down_cooldown: 10m}\n"
    "    resilience: {retry: {max: 2}, timeouts: {connect: 1s, per_try: 2s, request: 5s}}\n"
    "    config: {feature/x: on, limit: 10}\n"      /* 17 */
    "  db:\n"                                       /* 18 */
    "    command: [postgres, -D, data]\n"           /* 19 */
    "    port: 5432\n"                              /* 20 */
    "    health: {tcp: true}\n"                     /* 21 */
    "    restart: never\n"                          /* 22 */
    "  cache:\n"                                    /* 23 */
    "    command: redis-server\n"                   /* 24 */
    "    replicas: 0\n"                             /* 25 */
    "gateway:\n"                                    /* 26 */
    "  listen: 127.0.0.1:9090\n"                    /* 27 */
    "  admin: 127.0.0.1:9091\n"                     /* 28 */
    "  routes:\n"                                   /* 29 */
    "    - {match: {prefix: /api}, service: api}\n" /* 30 */
    "    - {match: {prefix: /db}, split: [{service: api, weight: 1}, {service: db, weight: 1}]}\n"
    "control_plane: {listen: 127.0.0.1:7800}\n" /* 32 */
    "data_dir: state\n";                        /* 33 */

static int load(const char *text, struct sh_doc **doc, struct manifest **m, struct sh_diag *d)
{
    int rc = manifest_read_buf("shoal.yaml", text, strlen(text), doc, d);

    *m = NULL;
    if (rc < 0) return rc;
    rc = manifest_from_doc(*doc, m, d);
    if (rc < 0) {
        sh_doc_free(*doc);
        *doc = NULL;
    }
    return rc;
}

static void test_manifest_schema__full_manifest_reads_back(void **state)
{
    struct sh_doc *doc;
    struct manifest *m;
    struct sh_diag d = {{0}, {0}};
    const struct manifest_service *api, *db, *cache;
    (void)state;

    assert_int_equal(load(full, &doc, &m, &d), 0);
    assert_string_equal(m->name, "shop");
    assert_string_equal(m->file, "shoal.yaml");
    assert_string_equal(m->control_plane_listen, "127.0.0.1:7800");
    assert_string_equal(m->data_dir, "state");
    assert_int_equal(m->service_count, 3);
    api = &m->services[0];
    db = &m->services[1];
    cache = &m->services[2];
    assert_string_equal(api->name, "api");
    assert_int_equal(api->argc, 5);
    assert_string_equal(api->argv[0], "./api");
    assert_string_equal(api->argv[1], "--port");
    assert_string_equal(api->argv[2], "$PORT");
    assert_string_equal(api->argv[3], "two words");
    assert_string_equal(api->argv[4], "x \"y\"");
    assert_null(api->argv[5]);
    assert_int_equal(api->env_count, 2);
    assert_string_equal(api->env[0].name, "LOG");
    assert_string_equal(api->env[0].value, "debug");
    assert_string_equal(api->env[1].name, "N");
    assert_string_equal(api->env[1].value, "3");
    assert_string_equal(api->working_dir, "/srv/api");
    assert_int_equal(api->replicas, 3);
    assert_true(api->is_port_auto);
    assert_int_equal(api->port, 0);
    assert_int_equal(api->health.kind, MANIFEST_HEALTH_HTTP);
    assert_string_equal(api->health.http_path, "/health");
    assert_int_equal(api->health.interval_ms, 2000);
    assert_int_equal(api->health.timeout_ms, 500);
    assert_int_equal(api->health.healthy_threshold, 2);
    assert_int_equal(api->health.unhealthy_threshold, 4);
    assert_int_equal(api->health.start_period_ms, 10000);
    assert_int_equal(api->depends_count, 2);
    assert_string_equal(api->depends_on[0], "db");
    assert_string_equal(api->depends_on[1], "cache");
    assert_int_equal(api->depends_idx[0], 1);
    assert_int_equal(api->depends_idx[1], 2);
    assert_int_equal(api->restart, MANIFEST_RESTART_ON_FAILURE);
    assert_int_equal(api->stop_grace_ms, 20000);
    assert_string_equal(api->version, "1.2.0");
    assert_true(api->autoscale.is_set);
    assert_int_equal(api->autoscale.min, 2);
    assert_int_equal(api->autoscale.max, 8);
    assert_int_equal(api->autoscale.target_kind, MANIFEST_TARGET_P99_MS);
    assert_int_equal(api->autoscale.target, 200);
    assert_int_equal(api->autoscale.up_cooldown_ms, 60000);
    assert_int_equal(api->autoscale.down_cooldown_ms, 600000);
    assert_non_null(api->resilience);
    assert_int_equal(api->resilience->line, 16);
    assert_int_equal(api->config_count, 2);
    assert_string_equal(api->config[0].name, "feature/x");
    assert_string_equal(api->config[0].value, "on");
    assert_string_equal(api->config[1].value, "10");

    assert_int_equal(db->argc, 3);
    assert_string_equal(db->argv[2], "data");
    assert_int_equal(db->port, 5432);
    assert_false(db->is_port_auto);
    assert_int_equal(db->health.kind, MANIFEST_HEALTH_TCP);
    assert_int_equal(db->restart, MANIFEST_RESTART_NEVER);
    assert_int_equal(db->replicas, 1);
    assert_int_equal(db->stop_grace_ms, 10000);
    assert_null(db->version);
    assert_false(db->autoscale.is_set);
    assert_null(db->resilience);

    assert_int_equal(cache->argc, 1);
    assert_int_equal(cache->replicas, 0);
    assert_int_equal(cache->restart, MANIFEST_RESTART_ALWAYS);
    assert_int_equal(cache->health.kind, MANIFEST_HEALTH_NONE);
    assert_int_equal(cache->port, 0);

    /* db and cache before api */
    assert_int_equal(m->start_order[2], 0);
    assert_int_equal(manifest_instance_count(m), 4);
    assert_int_equal(manifest_service_index(m, "cache"), 2);
    assert_int_equal(manifest_service_index(m, "nope"), -1);

    assert_true(m->gateway.is_set);
    assert_string_equal(m->gateway.listen, "127.0.0.1:9090");
    assert_string_equal(m->gateway.admin, "127.0.0.1:9091");
    assert_int_equal(m->gateway.route_count, 2);
    assert_int_equal(m->gateway.routes->items[1]->line, 31);
    manifest_free(m);
    sh_doc_free(doc);
}

static void test_manifest_schema__defaults(void **state)
{
    struct sh_doc *doc;
    struct manifest *m;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_int_equal(load("services:\n  web:\n    command: ./web\n", &doc, &m, &d), 0);
    assert_null(m->name);
    assert_string_equal(m->control_plane_listen, "127.0.0.1:7700");
    assert_string_equal(m->mesh_listen, "127.0.0.1:7701");
    assert_string_equal(m->data_dir, ".shoal");
    assert_false(m->gateway.is_set);
    assert_int_equal(m->services[0].replicas, 1);
    assert_int_equal(m->services[0].restart, MANIFEST_RESTART_ALWAYS);
    assert_int_equal(m->services[0].stop_grace_ms, 10000);
    manifest_free(m);
    sh_doc_free(doc);
}

/* One error case: the manifest text, and the exact where and what. */
struct bad {
    const char *text, *where, *what;
};

static const struct bad bads[] = {
    {"services:\n  api:\n    comand: x\n", "shoal.yaml:3:5",
     "services.api: unknown key 'comand' (did you mean 'command'?)"},
    {"servics: {}\n", "shoal.yaml:1:1",
     "top level: unknown key 'servics' (did you mean 'services'?)"},
    {"services:\n  api:\n    command: x\n    replicas: 1001\n", "shoal.yaml:4:15",
     "services.api.replicas: expected a number from 0 to 1000"},
    {"services:\n  api:\n    command: x\n    replicas: three\n", "shoal.yaml:4:15",
     "services.api.replicas: expected a number from 0 to 1000"},
    {"services:\n  api:\n    command: {a: b}\n", "shoal.yaml:3:14",
     "services.api.command: expected a string or a list of arguments, found a map"},
    {"services:\n  api:\n    command: x\n    env: [A]\n", "shoal.yaml:4:10",
     "services.api.env: expected a map, found a list"},
    {"services:\n  api:\n    command: x\n    stop_grace: 10x\n", "shoal.yaml:4:17",
     "services.api.stop_grace: duration '10x': unknown unit 'x' (use us, ms, s, m, h)"},
    {"services:\n  api:\n    command: x\n    port: auto\n    health: {http: /h, interval: soon}\n",
     "shoal.yaml:5:34",
     "services.api.health.interval: duration 'soon': expected a number at offset 0"},
    {"services:\n  api:\n    command: x\n    depends_on: [db]\n", "shoal.yaml:4:18",
     "services.api.depends_on[0]: no service named 'db'"},
    {"services:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: x\n"
     "    depends_on: [c]\n  c:\n    command: x\n    depends_on: [a]\n",
     "shoal.yaml:10:18", "services.c.depends_on: a dependency cycle: a -> b -> c -> a"},
    {"services:\n  a:\n    command: x\n    depends_on: [a]\n", "shoal.yaml:4:18",
     "services.a.depends_on: a dependency cycle: a -> a"},
    {"services:\n  api:\n    command: x\n    autoscale: {min: 5, max: 2, target: {rps: 10}}\n",
     "shoal.yaml:4:22", "services.api.autoscale.min: 5 is above max (2)"},
    {"services:\n  api:\n    command: x\n    replicas: 9\n"
     "    autoscale: {min: 1, max: 4, target: {in_flight: 10}}\n",
     "shoal.yaml:4:15", "services.api.replicas: 9 is outside autoscale's min..max (1..4)"},
    {"services:\n  Api_1:\n    command: x\n", "shoal.yaml:2:3",
     "services: 'Api_1' is not a valid name (a DNS label: 1 to 63 of a-z, 0-9 and '-', not "
     "starting or ending with '-')"},
    {"name: -shop\nservices:\n  a:\n    command: x\n", "shoal.yaml:1:7",
     "name: '-shop' is not a valid name (a DNS label: 1 to 63 of a-z, 0-9 and '-', not starting "
     "or ending with '-')"},
    {"services:\n  api:\n    command: x\n    port: auto\ngateway:\n  routes:\n"
     "    - {match: {prefix: /}, service: web}\n",
     "shoal.yaml:7:37", "gateway.routes[0].service: no service named 'web'"},
    {"services:\n  api:\n    command: x\n    port: auto\ngateway:\n  routes:\n"
     "    - split: [{service: api, weight: 1}, {service: nope, weight: 1}]\n",
     "shoal.yaml:7:52", "gateway.routes[0].split[1].service: no service named 'nope'"},
    {"services:\n  api:\n    command: x\n    port: auto\ngateway:\n  routes:\n"
     "    - {cluster: api}\n",
     "shoal.yaml:7:17",
     "gateway.routes[0].cluster: routes name services here (write service: NAME)"},
    {"services:\n  api:\n    command: x\ngateway:\n  routes:\n    - {service: api}\n",
     "shoal.yaml:6:17",
     "gateway.routes[0].service: service 'api' has no port (give it port: auto)"},
    {"services:\n  api:\n    command: \"a 'b\"\n", "shoal.yaml:3:14",
     "services.api.command: unterminated single quote"},
    {"services:\n  api:\n    command: a && b\n", "shoal.yaml:3:14",
     "services.api.command: '&' is shell syntax, which a command string does not run; write a "
     "list such as [sh, -c, '...']"},
    {"services:\n  api:\n    command: [a, 'x$1']\n", "shoal.yaml:3:18",
     "services.api.command[1]: '$' must start a variable ($NAME or ${NAME}); write $$ for a '$'"},
    {"services:\n  api:\n    command: x\n    port: 70000\n", "shoal.yaml:4:11",
     "services.api.port: expected auto or a number from 1 to 65535"},
    {"services:\n  api:\n    command: x\n    port: 80\n    replicas: 2\n", "shoal.yaml:4:11",
     "services.api.port: a fixed port allows one instance; write port: auto"},
    {"services:\n  api:\n    command: x\n    restart: sometimes\n", "shoal.yaml:4:14",
     "services.api.restart: 'sometimes' (expected always, on-failure or never)"},
    {"services:\n  api:\n    command: x\n    health: {http: /h}\n", "shoal.yaml:4:13",
     "services.api.health: needs a port (port: auto)"},
    {"services:\n  api:\n    command: x\n    port: auto\n    health: {http: /h, tcp: true}\n",
     "shoal.yaml:5:13", "services.api.health: give exactly one of http: /path and tcp: true"},
    {"services:\n  api:\n    command: x\n    port: auto\n    env: {PORT: 1}\n", "shoal.yaml:5:11",
     "services.api.env.PORT: set by shoal from port; remove it"},
    {"services:\n  api:\n    command: x\n    env:\n      DB: ${NO_SUCH_VAR_FOR_SHOAL}/db\n",
     "shoal.yaml:5:11",
     "services.api.env.DB: unknown variable 'NO_SUCH_VAR_FOR_SHOAL' (neither "
     "shoal's nor in its environment; $$ for a '$')"},
    {"services:\n  api:\n    command: x\n    env: {DB: \"${SHOAL_DATA_DIR/db\"}\n",
     "shoal.yaml:4:15", "services.api.env.DB: '${SHOAL_DATA_DIR' without its closing '}'"},
    {"services:\n  api:\n    command: x\n    env: {PRICE: 5$}\n", "shoal.yaml:4:18",
     "services.api.env.PRICE: '$' must start a variable (${NAME} or $NAME); write $$ for a '$'"},
    {"services:\n  api:\n    command: x\n    env: {URL: \"http://h:${PORT}\"}\n", "shoal.yaml:4:16",
     "services.api.env.URL: unknown variable 'PORT': the service has no port (port: auto)"},
    {"services:\n  api:\n    command: x\n    env: {SHOAL_DATA_DIR: /x}\n", "shoal.yaml:4:11",
     "services.api.env.SHOAL_DATA_DIR: set by shoal (DATA_DIR/services/api); remove it"},
    {"services:\n  api:\n    command: x\n    env: {1X: a}\n", "shoal.yaml:4:11",
     "services.api.env: '1X' is not a variable name (letters, digits and '_', not starting with "
     "a digit)"},
    {"services:\n  api:\n    command: x\n    resilience: {breakers: {}}\n", "shoal.yaml:4:18",
     "services.api.resilience: unknown key 'breakers' (did you mean 'breaker'?)"},
    {"services:\n  api:\n    command: x\n    config: {a: [1]}\n", "shoal.yaml:4:17",
     "services.api.config.a: expected a single value, found a list"},
    {"services:\n", "shoal.yaml:1:10", "services: expected a map, found nothing (null)"},
    {"gateway: {routes: []}\n", "shoal.yaml:1:1", "top level: missing required key 'services'"},
    {"services:\n  a:\n    command: x\ncontrol_plane: {listen: nowhere}\n", "shoal.yaml:4:25",
     "control_plane.listen: 'nowhere': the port is missing (write HOST:PORT, e.g. 127.0.0.1:8080)"},
    {"services:\n  a:\n    command: x\ncontrol_plane: {listen: '127.0.0.1:0'}\n", "shoal.yaml:4:25",
     "control_plane.listen: '127.0.0.1:0': port 0 is not allowed here (others connect to it)"},
    {"services:\n  a:\n    command: x\ngateway: {listen: 'example.com:80', routes: []}\n",
     "shoal.yaml:4:19",
     "gateway.listen: 'example.com:80': the host must be a numeric IPv4 address, [IPv6] in "
     "brackets, 'localhost', or empty/'*' for every address"},
    {"services:\n  a:\n    command: x\nmesh: {listen: 127.0.0.1}\n", "shoal.yaml:4:16",
     "mesh.listen: '127.0.0.1': the port is missing (write HOST:PORT, e.g. 127.0.0.1:8080)"},
    {"services:\n  a:\n    command: x\nmesh: {port: 1}\n", "shoal.yaml:4:8",
     "mesh: unknown key 'port' (allowed: listen, admin, identity, tracing, inbound)"},
    {"services:\n  a:\n    command: x\nmesh: {inbound: 127.0.0.1}\n", "shoal.yaml:4:17",
     "mesh.inbound: '127.0.0.1': the port is missing (write HOST:PORT, e.g. 127.0.0.1:8080)"},
    {"services:\n  a:\n    command: x\nremote_services:\n  a: {address: 127.0.0.1:1, "
     "identity: 'spiffe://t/service/a', ca: c.pem}\n",
     "shoal.yaml:5:3", "remote_services.a: 'a' is also a service of this manifest"},
    {"services:\n  a:\n    command: x\nremote_services:\n  b: {address: 127.0.0.1:1, "
     "identity: 'https://t/service/b', ca: c.pem}\n",
     "shoal.yaml:5:39",
     "remote_services.b.identity: 'https://t/service/b' is not "
     "spiffe://TD/service/NAME"},
    {"services:\n  a:\n    command: x\nremote_services:\n  b: {address: 127.0.0.1:1, "
     "identity: 'spiffe://t/service/b'}\n",
     "shoal.yaml:5:6", "remote_services.b: missing required key 'ca'"},
    {"services:\n  a:\n    command: x\nmesh: {identity: strict}\n", "shoal.yaml:4:18",
     "mesh.identity: 'strict' is not optional or required"},
    {"services:\n  a:\n    command: x\nobserve: {zipkin_port: 0}\n", "shoal.yaml:4:24",
     "observe.zipkin_port: expected a number from 1 to 65535"},
    {"services:\n  a:\n    command: x\nobserve: {zipkin: 9411}\n", "shoal.yaml:4:11",
     "observe: unknown key 'zipkin' (allowed: zipkin_port)"},
    {"services:\n  a:\n    command: x\nsecurity: {default: block}\n", "shoal.yaml:4:21",
     "security.default: 'block' is not allow or deny"},
    {"services:\n  a:\n    command: x\nsecurity:\n  intentions:\n"
     "    - {from: a, to: b, action: allow}\n",
     "shoal.yaml:6:21", "security.intentions[0].to: no service named 'b' (a service, '*')"},
    {"services:\n  a:\n    command: x\nsecurity:\n  intentions:\n"
     "    - {from: a, to: '*', action: allow, methods: [FETCH]}\n",
     "shoal.yaml:6:51",
     "security.intentions[0].methods[0]: 'FETCH' is not a method (GET, HEAD, POST, PUT, PATCH, "
     "DELETE, OPTIONS, CONNECT, TRACE)"},
    {"services:\n  a:\n    command: x\nsecurity:\n  intentions:\n"
     "    - {from: gateway, to: a, action: permit}\n",
     "shoal.yaml:6:38", "security.intentions[0].action: 'permit' is not allow or deny"},
    {"services:\n  a:\n    command: x\n    slo: {availability: 100%}\n", "shoal.yaml:4:25",
     "services.a.slo.availability: expected a percent above 0 and below 100, such as 99.9%"},
    {"services:\n  a:\n    command: x\n    slo: {availability: high}\n", "shoal.yaml:4:25",
     "services.a.slo.availability: expected a percent above 0 and below 100, such as 99.9%"},
    {"services:\n  a:\n    command: x\n    slo: {window: 30d}\n", "shoal.yaml:4:10",
     "services.a.slo: give availability, latency or both"},
    {"services:\n  a:\n    command: x\n    slo: {availability: 99, window: 91d}\n",
     "shoal.yaml:4:37", "services.a.slo.window: expected from 1m to 90d, such as 30d"},
    {"services:\n  a:\n    command: x\n    slo: {latency: {p98: 1s}}\n", "shoal.yaml:4:21",
     "services.a.slo.latency: unknown key 'p98' (did you mean 'p90'?)"},
    {"services:\n  a:\n    command: x\n    slo: {latency: {p99: 1s, p50: 1ms}}\n",
     "shoal.yaml:4:20",
     "services.a.slo.latency: give one of p50..p999 (p99: 300ms), or threshold and objective"},
    {"services:\n  a:\n    command: x\n    slo: {latency: {threshold: 1s}}\n", "shoal.yaml:4:20",
     "services.a.slo.latency: give one of p50..p999 (p99: 300ms), or threshold and objective"},
    {"services:\n  a:\n    command: x\n    slo: {latency: {p99: 0ms}}\n", "shoal.yaml:4:20",
     "services.a.slo.latency: the threshold must be above 0"},
    {"services:\n  a:\n    command: x\n    slo: {availabilty: 99}\n", "shoal.yaml:4:11",
     "services.a.slo: unknown key 'availabilty' (did you mean 'availability'?)"},
};

static void test_manifest_schema__errors_name_where_and_what(void **state)
{
    int failures = 0;
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(bads); i++) {
        struct sh_doc *doc = NULL;
        struct manifest *m = NULL;
        struct sh_diag d = {{0}, {0}};
        int rc = load(bads[i].text, &doc, &m, &d);
        if (rc != SH_EPARSE || strcmp(d.where, bads[i].where) || strcmp(d.what, bads[i].what)) {
            print_error("case %zu: rc %s\n  got  %s: %s\n  want %s: %s\n", i, sh_errname(rc),
                        d.where, d.what, bads[i].where, bads[i].what);
            failures++;
        }
        assert_null(m);
        assert_null(doc);
    }
    assert_int_equal(failures, 0);
}

/* Env values may refer to shoal's variables and shoal's environment, and be long (up to
 * SUP_ENV_VALUE_MAX); one byte more is an error at the value. */
/* slo: availability as "99.9%" or 99.9, latency as {pNN: D} or {threshold, objective}, window
 * as a duration or days; 30 days by default. */
static void test_manifest_schema__slo(void **state)
{
    static const char text[] =
        "services:\n"
        "  a:\n    command: x\n    slo: {availability: 99.9%, latency: {p99: 300ms}, window: 7d}\n"
        "  b:\n    command: x\n    slo: {availability: 99.5}\n"
        "  c:\n    command: x\n    slo: {latency: {threshold: 1s, objective: 95%}, window: 1h}\n"
        "  d:\n    command: x\n";
    struct sh_doc *doc;
    struct manifest *m;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_int_equal(load(text, &doc, &m, &d), 0);
    assert_true(m->services[0].slo.is_set);
    assert_true(m->services[0].slo.availability == 99.9);
    assert_int_equal(m->services[0].slo.latency_ms, 300);
    assert_true(m->services[0].slo.latency_percent == 99);
    assert_int_equal(m->services[0].slo.window_s, 7 * 86400);
    assert_true(m->services[1].slo.availability == 99.5);
    assert_int_equal(m->services[1].slo.latency_ms, 0);
    assert_int_equal(m->services[1].slo.window_s, 30 * 86400);
    assert_int_equal(m->services[2].slo.latency_ms, 1000);
    assert_true(m->services[2].slo.latency_percent == 95);
    assert_true(m->services[2].slo.availability == 0);
    assert_int_equal(m->services[2].slo.window_s, 3600);
    assert_false(m->services[3].slo.is_set);
    manifest_free(m);
    sh_doc_free(doc);
}

static void test_manifest_schema__env_references_and_long_values(void **state)
{
    struct buf text = BUF_INIT(0);
    struct sh_doc *doc = NULL;
    struct manifest *m = NULL;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    setenv("SHOAL_TEST_FROM_ENV", "yes", 1);
    assert_int_equal(load("services:\n  api:\n    command: x\n    port: auto\n    env:\n"
                          "      A: ${SHOAL_DATA_DIR}/a.db\n      B: $PORT-${SHOAL_PORT}\n"
                          "      C: ${SHOAL_SERVICE}.${SHOAL_INSTANCE}@$SHOAL_MESH\n"
                          "      D: ${SHOAL_TEST_FROM_ENV} costs 5$$\n",
                          &doc, &m, &d),
                     0);
    assert_string_equal(m->services[0].env[3].value, "${SHOAL_TEST_FROM_ENV} costs 5$$");
    manifest_free(m);
    sh_doc_free(doc);
    for (int extra = 0; extra < 2; extra++) {
        buf_reset(&text);
        buf_appends(&text, SLICE("services:\n  api:\n    command: x\n    env:\n      BIG: "));
        for (size_t i = 0; i < SUP_ENV_VALUE_MAX + (size_t)extra; i++)
            buf_appendc(&text, 'v');
        buf_appendc(&text, '\n');
        doc = NULL;
        m = NULL;
        int rc = load(text.data, &doc, &m, &d);
        if (!extra) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(m->services[0].env[0].value), SUP_ENV_VALUE_MAX);
            manifest_free(m);
            sh_doc_free(doc);
        } else {
            assert_int_equal(rc, SH_EPARSE);
            assert_string_equal(d.where, "shoal.yaml:5:12");
            assert_string_equal(d.what, "services.api.env.BIG: a value of 130049 bytes (at most "
                                        "130048)");
        }
    }
    buf_release(&text);
}

static void test_manifest_schema__gateway_doc_renames_service_to_cluster(void **state)
{
    struct sh_doc *doc, *g;
    struct manifest *m;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *cl, *rt, *split;
    (void)state;

    assert_int_equal(load(full, &doc, &m, &d), 0);
    assert_int_equal(manifest_gateway_doc(m, &g), 0);
    assert_string_equal(g->file, "shoal.yaml");
    assert_string_equal(sh_node_get(g->root, "listen")->text, "127.0.0.1:9090");
    assert_int_equal(sh_node_get(g->root, "listen")->line, 27);
    assert_string_equal(sh_node_get(sh_node_get(g->root, "control_plane"), "address")->text,
                        "127.0.0.1:7800");
    cl = sh_node_get(g->root, "clusters");
    assert_int_equal(cl->count, 3);
    assert_string_equal(sh_node_get(cl->items[0], "name")->text, "api");
    assert_string_equal(sh_node_get(cl->items[0], "service")->text, "api");
    assert_int_equal(sh_node_get(cl->items[0], "retry")->line, 16); /* shared with the manifest */
    assert_null(sh_node_get(cl->items[1], "retry"));
    rt = sh_node_get(g->root, "routes");
    assert_int_equal(rt->count, 2);
    assert_string_equal(sh_node_get(rt->items[0], "cluster")->text, "api");
    assert_null(sh_node_get(rt->items[0], "service"));
    split = sh_node_get(rt->items[1], "split");
    assert_string_equal(sh_node_get(split->items[1], "cluster")->text, "db");
    sh_doc_free(g);
    manifest_free(m);
    sh_doc_free(doc);
}

static void test_manifest_schema__mesh_doc_routes_each_service_by_host(void **state)
{
    struct sh_doc *doc, *g;
    struct manifest *m;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *rt, *last, *resp;
    (void)state;

    assert_int_equal(load(full, &doc, &m, &d), 0);
    assert_int_equal(manifest_mesh_doc(m, &g), 0);
    assert_string_equal(sh_node_get(g->root, "listen")->text, "127.0.0.1:7701");
    assert_int_equal(sh_node_get(g->root, "clusters")->count, 3);
    assert_int_equal(sh_node_get(sh_node_get(g->root, "clusters")->items[0], "retry")->line, 16);
    rt = sh_node_get(g->root, "routes");
    assert_int_equal(rt->count, 4);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(sh_node_get(sh_node_get(rt->items[i], "match"), "host")->text,
                            m->services[i].name);
        assert_string_equal(sh_node_get(rt->items[i], "cluster")->text, m->services[i].name);
    }
    last = rt->items[3];
    assert_null(sh_node_get(last, "match"));
    resp = sh_node_get(last, "respond");
    assert_string_equal(sh_node_get(resp, "status")->text, "503");
    assert_non_null(strstr(sh_node_get(resp, "body")->text, "services here: api db cache"));
    sh_doc_free(g);
    manifest_free(m);
    sh_doc_free(doc);
}

static void test_manifest_schema__check_summary_and_json(void **state)
{
    char path[] = "/tmp/shoal-schema-XXXXXX";
    struct sh_diag d = {{0}, {0}};
    char *out, want[128];
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, full, strlen(full)), (ssize_t)strlen(full));
    close(fd);
    assert_int_equal(manifest_check(path, false, NULL, &out, &d), 0);
    snprintf(want, sizeof(want), "%s: ok (3 services, 4 instances, gateway on 127.0.0.1:9090)\n",
             path);
    assert_string_equal(out, want);
    sh_free(out);
    assert_int_equal(manifest_check(path, true, NULL, &out, &d), 0);
    assert_non_null(strstr(out, "\"command\":[\"./api\",\"--port\",\"$PORT\",\"two words\","
                                "\"x \\\"y\\\"\"]"));
    assert_non_null(strstr(out, "\"start_order\":[\"db\",\"cache\",\"api\"]"));
    assert_non_null(strstr(out, "\"autoscale\":{\"min\":2,\"max\":8,\"target\":{\"p99_ms\":200}"));
    sh_free(out);
    unlink(path);
    assert_int_equal(manifest_check(path, false, NULL, &out, &d), SH_ENOENT);
    assert_null(out);
}

/* Every allocation failure while reading the full manifest: SH_ENOMEM and nothing leaked. */
static void test_manifest_schema__oom_torture(void **state)
{
    long total;
    (void)state;

    sh_alloc_fail_after(0);
    {
        struct sh_doc *doc, *g;
        struct manifest *m;
        struct sh_diag d;
        sh_alloc_fail_after(1000000);
        assert_int_equal(load(full, &doc, &m, &d), 0);
        assert_int_equal(manifest_gateway_doc(m, &g), 0);
        sh_doc_free(g);
        assert_int_equal(manifest_mesh_doc(m, &g), 0);
        total = sh_alloc_count();
        sh_alloc_fail_after(0);
        sh_doc_free(g);
        manifest_free(m);
        sh_doc_free(doc);
    }
    assert_true(total > 2);
    for (long n = 1; n <= total; n++) {
        struct sh_doc *doc = NULL, *g = NULL;
        struct manifest *m = NULL;
        struct sh_diag d = {{0}, {0}};
        int rc;
        sh_alloc_fail_after(n);
        rc = load(full, &doc, &m, &d);
        if (rc == 0) rc = manifest_gateway_doc(m, &g);
        sh_doc_free(g);
        g = NULL;
        if (rc == 0) rc = manifest_mesh_doc(m, &g);
        sh_alloc_fail_after(0);
        if (rc != SH_ENOMEM)
            fail_msg("failing allocation %ld of %ld: %s (%s: %s)", n, total, sh_errname(rc),
                     d.where, d.what);
        assert_null(g);
        manifest_free(m);
        sh_doc_free(doc);
        assert_int_equal(sh_alloc_live(), test_live_at_start);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_manifest_schema__full_manifest_reads_back),
        SH_TEST(test_manifest_schema__defaults),
        SH_TEST(test_manifest_schema__errors_name_where_and_what),
        SH_TEST(test_manifest_schema__slo),
        SH_TEST(test_manifest_schema__env_references_and_long_values),
        SH_TEST(test_manifest_schema__gateway_doc_renames_service_to_cluster),
        SH_TEST(test_manifest_schema__mesh_doc_routes_each_service_by_host),
        SH_TEST(test_manifest_schema__check_summary_and_json),
        SH_TEST(test_manifest_schema__oom_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
