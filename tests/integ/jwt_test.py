#!/usr/bin/env python3
"""JWT at the edge through the real binary: `shoal gateway` with routes protected by a JWKS file
and by a JWKS URL (a small HTTP server in this test), in front of `shoal echo`. Keys are made and
tokens signed with the `openssl` command (RS256, ES256, EdDSA) and Python's hmac (HS256); the
test SKIPs (77) without openssl. Usage: jwt_test.py PATH/TO/shoal [TEST_NAME...]"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = sys.argv[1]
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)
NOW = int(time.time())
HS_SECRET = b"an-hs256-secret-of-at-least-32-bytes!"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def der_items(data):
    """The items of a DER SEQUENCE (or the top level): (tag, content) pairs."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        out.append((tag, data[i:i + n]))
        i += n
    return out


def der_uint(b):
    return b.lstrip(b"\x00") or b"\x00"


class Key:
    """A private key made by openssl in dir, its public JWK, and a signer."""

    def __init__(self, dir, kind, kid):
        self.kind, self.kid = kind, kid
        self.path = os.path.join(dir, f"{kid}.pem")
        gen = {"RS256": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
               "ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
               "EdDSA": ["-algorithm", "ED25519"]}[kind]
        openssl("genpkey", *gen, "-out", self.path)
        self.pub_pem = openssl("pkey", "-in", self.path, "-pubout")
        spki = openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")
        bits = der_items(der_items(spki)[0][1])[1][1][1:]  # BIT STRING minus its unused-bits byte
        if kind == "RS256":
            n, e = (der_uint(v) for _, v in der_items(der_items(bits)[0][1]))
            self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(n),
                        "e": b64(e)}
        elif kind == "ES256":
            self.jwk = {"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(bits[1:33]),
                        "y": b64(bits[33:65])}
        else:
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(bits[-32:])}

    def sign(self, data):
        if self.kind == "EdDSA":
            tmp = self.path + ".in"
            with open(tmp, "wb") as f:
                f.write(data)
            return openssl("pkeyutl", "-sign", "-inkey", self.path, "-rawin", "-in", tmp)
        sig = openssl("dgst", "-sha256", "-sign", self.path, "-binary", data=data)
        if self.kind == "ES256":  # DER SEQUENCE { r, s } to JOSE r||s
            r, s = (der_uint(v) for _, v in der_items(der_items(sig)[0][1]))
            sig = r.rjust(32, b"\x00") + s.rjust(32, b"\x00")
        return sig


def token(key, claims, header=None, secret=None):
    h = header or {"alg": key.kind, "kid": key.kid, "typ": "JWT"}
    si = (b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    if secret is not None:
        sig = hmac.new(secret, si, hashlib.sha256).digest()
    elif h["alg"] == "none":
        sig = b""
    else:
        sig = key.sign(si)
    return si.decode() + "." + b64(sig)


def claims(**over):
    c = {"iss": "https://idp.test", "aud": ["api", "other"], "sub": "alice",
         "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


class JwksServer:
    """Serves /jwks.json with whatever keys it holds now; counts the fetches."""

    def __init__(self):
        self.keys, self.fetches = [], 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()


class Fixture:
    def __init__(self):
        self.dir = lib.tempdir("shoal-jwt-")
        self.rsa = Key(self.dir, "RS256", "rsa1")
        self.ec = Key(self.dir, "ES256", "ec1")
        self.ed = Key(self.dir, "EdDSA", "ed1")
        self.rsa2 = Key(self.dir, "RS256", "rsa2")  # appears in the JWKS URL later (rotation)
        with open(os.path.join(self.dir, "jwks.json"), "w") as f:
            json.dump({"keys": [self.rsa.jwk, self.ec.jwk, self.ed.jwk]}, f)
        self.jwks = JwksServer()
        self.jwks.keys = [self.rsa.jwk]
        self.echo = lib.Echo("--name", "up")
        self.port, self.admin = lib.free_port(), lib.free_port()
        self.cfg = os.path.join(self.dir, "gateway.yaml")
        with open(self.cfg, "w") as f:
            f.write(f"""listen: 127.0.0.1:{self.port}
workers: 2
admin: 127.0.0.1:{self.admin}
limits: {{max_field_line: 32KiB, max_head: 64KiB}}  # so the token's own limit (8 KiB) is met
clusters:
  - name: up
    endpoints: ["127.0.0.1:{self.echo.port}"]
routes:
  - name: api
    match: {{prefix: /api}}
    cluster: up
    jwt:
      issuer: https://idp.test
      audiences: [api]
      jwks_file: jwks.json
      hs256_secret_env: JWT_TEST_SECRET
      claims_to_headers: {{sub: X-User, roles: X-Roles}}
  - name: strict
    match: {{prefix: /strict}}
    cluster: up
    jwt:
      jwks_file: jwks.json
      required_claims: {{scope: admin}}
      from: cookie:session
      cache: 0
  - name: url
    match: {{prefix: /url}}
    cluster: up
    jwt:
      issuer: https://idp.test
      jwks_url: http://127.0.0.1:{self.jwks.port}/jwks.json
      jwks_min_refresh: 300ms
      claims_to_headers: {{sub: X-User}}
  - name: open
    match: {{prefix: /}}
    cluster: up
""")
        env = dict(os.environ, JWT_TEST_SECRET=HS_SECRET.decode())
        self.proc = subprocess.Popen([SHOAL, "gateway", "-c", self.cfg, "--grace", "1s"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.access = []
        threading.Thread(target=lambda: [self.access.append(json.loads(x))
                                         for x in self.proc.stdout], daemon=True).start()
        line = self.proc.stderr.readline()
        assert line and json.loads(line)["msg"] == "gateway listening", line
        self.log = []
        self.drain = threading.Thread(
            target=lambda: [self.log.append(x) for x in self.proc.stderr], daemon=True)
        self.drain.start()

    def get(self, path, tok=None, headers=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if tok is not None:
            h["Authorization"] = "Bearer " + tok
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def stop(self):
        lib.terminate(self.proc)
        self.echo.stop()
        self.jwks.stop()
        self.drain.join(timeout=10)  # it ends with the pipe: every line is in
        bad = [x for x in self.log if "Sanitizer" in x or "runtime error" in x]
        if bad:  # a sanitizer build's report at exit fails the run
            print("FAIL sanitizer report from the gateway:\n" + "".join(self.log[-40:]))
            sys.exit(1)


def expect_refused(fx, path, tok, reason, headers=None, status=401):
    st, h, body = fx.get(path, tok, headers)
    assert st == status, (st, body)
    www = h.get("www-authenticate", "")
    assert www.startswith('Bearer realm="'), www
    if reason:
        assert 'error="invalid_token"' in www and "error_description=" in www, www
        doc = json.loads(body)
        assert doc["error"] == "invalid_token" and doc["reason"] == reason, doc
    return h, body


def test_valid_tokens_pass_with_the_claim_as_a_header(fx):
    for key in (fx.rsa, fx.ec, fx.ed):
        st, _, body = fx.get("/api/x", token(key, claims(roles=["a", "b"])))
        assert st == 200, (key.kind, st, body)
        doc = json.loads(body)
        hdrs = {k.lower(): v for k, v in doc["headers"].items()}
        assert hdrs["x-user"] == "alice", doc
        assert hdrs["x-roles"] == '["a","b"]', doc
        assert hdrs["authorization"].startswith("Bearer "), doc  # forward_token defaults on
    # HS256 with the secret from the environment (no kid)
    tok = token(None, claims(), header={"alg": "HS256"}, secret=HS_SECRET)
    st, _, body = fx.get("/api/x", tok)
    assert st == 200, body


def test_missing_token_401_with_realm(fx):
    st, h, body = fx.get("/api/x")
    assert st == 401, body
    assert h["www-authenticate"] == 'Bearer realm="api"', h
    assert json.loads(body)["reason"] == "missing_token"
    st, h, _ = fx.get("/api/x", headers={"Authorization": "Basic YTpi"})
    assert st == 401 and "error=" not in h["www-authenticate"], h
    st, _, _ = fx.get("/open")  # routes without jwt are untouched
    assert st == 200


def test_refusals(fx):
    cases = [
        ("expired", token(fx.rsa, claims(exp=NOW - 120)), "expired"),
        ("not yet valid", token(fx.ec, claims(nbf=NOW + 600)), "not_yet_valid"),
        ("wrong aud", token(fx.rsa, claims(aud="web")), "wrong_audience"),
        ("wrong iss", token(fx.ed, claims(iss="https://evil.test")), "wrong_issuer"),
        ("alg none", token(fx.rsa, claims(), header={"alg": "none", "kid": "rsa1"}), "alg_none"),
        ("unknown kid", token(fx.rsa, claims(), header={"alg": "RS256", "kid": "nope"}),
         "unknown_kid"),
        # the RSA public key (PEM) as the HMAC secret of an HS256 token naming the RSA key
        ("key confusion", token(fx.rsa, claims(), header={"alg": "HS256", "kid": "rsa1"},
                                secret=fx.rsa.pub_pem), "alg_mismatch"),
        ("malformed", "abc.def", "malformed"),
        ("oversize", token(fx.rsa, claims(pad="x" * 9000)), "too_big"),
    ]
    good = token(fx.rsa, claims())
    bad = good[:good.rindex(".") + 1] + ("B" if good[good.rindex(".") + 1] == "A" else "A") + \
        good[good.rindex(".") + 2:]
    cases.append(("bad signature", bad, "bad_signature"))
    for name, tok, reason in cases:
        try:
            expect_refused(fx, "/api/x", tok, reason)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def test_forged_claim_header_is_stripped(fx):
    # with a valid token the header is the token's claim, once
    st, _, body = fx.get("/api/x", token(fx.rsa, claims(sub="bob")),
                         headers={"X-User": "admin", "x-roles": "root"})
    assert st == 200, body
    assert body.lower().count(b'"x-user"') == 1 and b'"bob"' in body, body
    assert b'"root"' not in body, body
    # a token without the claim: no X-User at all, never the client's
    st, _, body = fx.get("/api/x", token(fx.rsa, claims(sub=None)), headers={"X-User": "admin"})
    assert st == 200 and b"x-user" not in body.lower(), body


def test_cookie_source_and_required_claims(fx):
    ok = token(fx.ec, claims(scope="admin"))
    st, _, body = fx.get("/strict/x", headers={"Cookie": f"a=1; session={ok}"})
    assert st == 200, body
    expect_refused(fx, "/strict/x", None, "missing_claim",
                   headers={"Cookie": "session=" + token(fx.ec, claims())})
    expect_refused(fx, "/strict/x", None, "claim_mismatch",
                   headers={"Cookie": "session=" + token(fx.ec, claims(scope="user"))})
    st, h, _ = fx.get("/strict/x", ok)  # a bearer token is not where this route looks
    assert st == 401 and h["www-authenticate"] == 'Bearer realm="strict"', h


def test_two_authorization_fields_400(fx):
    import socket
    tok = token(fx.rsa, claims())
    s = socket.create_connection(("127.0.0.1", fx.port), timeout=10)
    s.sendall(f"GET /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
              f"Authorization: Bearer forged\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert b'error="invalid_request"' in data, data[:400]


def test_jwks_url_and_rotation(fx):
    tok = token(fx.rsa, claims())
    lib.wait_until(lambda: fx.get("/url/x", tok)[0] == 200, what="the JWKS URL fetched")
    st, _, body = fx.get("/url/x", tok)
    assert json.loads(body)["headers"].get("X-User") == "alice", body
    # rotation: rsa2 appears at the URL; the first token naming it meets an unknown kid, which
    # triggers a refresh (rate-limited to one per 300ms); then it passes
    fx.jwks.keys = [fx.rsa.jwk, fx.rsa2.jwk]
    tok2 = token(fx.rsa2, claims(sub="carol"))
    before = fx.jwks.fetches
    st, h, body = fx.get("/url/x", tok2)
    assert st == 401 and json.loads(body)["reason"] == "unknown_kid", body
    lib.wait_until(lambda: fx.get("/url/x", tok2)[0] == 200, what="rsa2 accepted after refresh")
    assert fx.jwks.fetches > before
    # a flood of unknown kids costs at most one fetch per jwks_min_refresh
    before, t0 = fx.jwks.fetches, time.monotonic()
    for i in range(40):
        fx.get("/url/x", token(fx.rsa, claims(), header={"alg": "RS256", "kid": f"k{i}"}))
    elapsed = time.monotonic() - t0
    assert fx.jwks.fetches - before <= elapsed / 0.3 + 2, (fx.jwks.fetches - before, elapsed)
    # a key removed from the JWKS stops working after the refresh (cached verdicts too)
    fx.jwks.keys = [fx.rsa2.jwk]
    fx.get("/url/x", token(fx.rsa, claims(), header={"alg": "RS256", "kid": "gone"}))
    lib.wait_until(lambda: fx.get("/url/x", tok)[0] == 401, what="rsa1 refused once removed")


def test_bad_config_names_the_path(fx):
    bad = os.path.join(fx.dir, "bad.yaml")
    for body, want in [
        ("jwt: {issuer: x}", "give jwks_file, jwks_url or hs256_secret_env"),
        ("jwt: {jwks_file: nope.json}", "jwks_file: cannot open"),
        ("jwt: {jwks_url: 'https://127.0.0.1/x'}", "https is not supported"),
        ("jwt: {jwks_file: jwks.json, claims_to_headers: {sub: 'Bad Header'}}",
         "is not a header a claim may set"),
        ("jwt: {jwks_file: jwks.json, bogus: 1}", "bogus"),
        ("jwt: {hs256_secret_env: JWT_TEST_NO_SUCH_VAR}", "the environment has no"),
    ]:
        with open(bad, "w") as f:
            f.write("listen: 127.0.0.1:0\nclusters: [{name: up, endpoints: ['127.0.0.1:1']}]\n"
                    "routes:\n  - cluster: up\n    " + body + "\n")
        r = subprocess.run([SHOAL, "gateway", "-c", bad], capture_output=True, text=True,
                           timeout=20)
        assert r.returncode != 0, (body, r.stderr)
        assert want in r.stderr and "routes[0].jwt" in r.stderr, (body, r.stderr)


def test_verified_tokens_are_cached_per_worker(fx):
    tok = token(fx.ec, claims(sub="dave"))
    for _ in range(6):  # two workers: at least three requests meet the same one
        st, _, body = fx.get("/api/cache", tok)
        assert st == 200 and b'"dave"' in body, body

    def verdicts():
        got = [a.get("auth") for a in list(fx.access) if a["target"] == "/api/cache"]
        return got if len(got) == 6 else None
    got = lib.wait_until(verdicts, what="six access lines")
    assert got[0] == "ok" and "cached" in got, got
    # a route with cache: 0 verifies every time
    ok = token(fx.ec, claims(scope="admin"))
    for _ in range(4):
        assert fx.get("/strict/nocache", headers={"Cookie": "session=" + ok})[0] == 200

    def strict():
        got = [a.get("auth") for a in list(fx.access) if a["target"] == "/strict/nocache"]
        return got if len(got) == 4 else None
    assert lib.wait_until(strict, what="four access lines") == ["ok"] * 4
    # refusals are logged with their reason
    fx.get("/api/refused", token(fx.rsa, claims(exp=NOW - 600)))
    lib.wait_until(lambda: [a for a in list(fx.access) if a["target"] == "/api/refused"
                            and a.get("auth") == "expired" and a["status"] == 401],
                   what="the refusal's access line")


def test_manifest_gateway_route_takes_jwt(fx):
    """`shoal up`'s manifest: a gateway route's jwt reaches the gateway's reader (shoal check
    reads the routes as the gateway does), jwks_file relative to the manifest."""
    man = os.path.join(fx.dir, "shoal.yaml")
    for jwks, want_rc, want in [("jwks.json", 0, "ok"),
                                ("missing.json", 1, "gateway.routes[0].jwt.jwks_file: cannot open")]:
        with open(man, "w") as f:
            f.write(f"""name: demo
services:
  api: {{command: [sleep, "100"], port: auto}}
gateway:
  routes:
    - match: {{prefix: /api}}
      service: api
      jwt: {{issuer: https://idp.test, jwks_file: {jwks}, claims_to_headers: {{sub: X-User}}}}
""")
        r = subprocess.run([SHOAL, "check", "-f", man], capture_output=True, text=True, timeout=20,
                           cwd="/")
        assert r.returncode == want_rc and want in r.stdout + r.stderr, (jwks, r.stdout, r.stderr)


TESTS = [
    test_manifest_gateway_route_takes_jwt,
    test_verified_tokens_are_cached_per_worker,
    test_valid_tokens_pass_with_the_claim_as_a_header,
    test_missing_token_401_with_realm,
    test_refusals,
    test_forged_claim_header_is_stripped,
    test_cookie_source_and_required_claims,
    test_two_authorization_fields_400,
    test_jwks_url_and_rotation,
    test_bad_config_names_the_path,
]

if __name__ == "__main__":
    try:
        subprocess.run(["openssl", "version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        print("SKIP: the openssl command is missing (Debian package openssl)")
        sys.exit(77)
    sys.exit(lib.run_tests(TESTS, ONLY, setup=Fixture))
