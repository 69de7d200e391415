#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// llhttp_diff.js: runs every case of the .vec files beside this script through Node's own
// HTTP/1.1 parser (llhttp, via the internal require('_http_common').HTTPParser) and compares
// its verdict with the one the case expects from our parser: accept, incomplete or reject,
// plus the number of messages and every listed body when both accept.
//
// A case that declares "llhttp: differs REASON" acknowledges a known disagreement; every
// other disagreement is printed and makes the script exit 1. An acknowledgement on a case
// that agrees is printed as stale (it does not fail the run: a newer llhttp may have fixed it).
// The internal parser API is tied to the Node major version: written for Node 20 (llhttp 9).
//
// Usage: node llhttp_diff.js [-v] [VECTOR_DIR]    (-v also lists the acknowledged cases)
'use strict';

const fs = require('fs');
const path = require('path');
const { HTTPParser } = require('_http_common');

// ---- the vector format (documented at the top of requests.vec) ----------------------------

// Decodes \r \n \t \\ \xNN and \{N:TEXT} from s starting at pos; stops at an unescaped '}'
// when inRepeat. Returns [bytes (array of numbers), next position].
function unescapeAt(s, pos, inRepeat, where) {
  const out = [];
  let i = pos;
  for (; i < s.length; i++) {
    const c = s[i];
    if (inRepeat && c === '}') return [out, i];
    if (c !== '\\') {
      out.push(s.charCodeAt(i) & 0xff);
      continue;
    }
    const e = s[++i];
    if (e === 'r') out.push(13);
    else if (e === 'n') out.push(10);
    else if (e === 't') out.push(9);
    else if (e === '\\') out.push(92);
    else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (e === '{') {
      const m = /^(\d+):/.exec(s.slice(i + 1));
      if (!m) throw new Error(`${where}: bad \\{ escape`);
      const [text, end] = unescapeAt(s, i + 1 + m[0].length, true, where);
      if (s[end] !== '}') throw new Error(`${where}: unterminated \\{ escape`);
      for (let k = 0; k < Number(m[1]); k++) for (const b of text) out.push(b);
      i = end;
    } else {
      throw new Error(`${where}: bad escape \\${e}`);
    }
  }
  if (inRepeat) throw new Error(`${where}: unterminated \\{ escape`);
  return [out, i];
}

function unescape(s, where) {
  return Buffer.from(unescapeAt(s, 0, false, where)[0]);
}

function splitKey(line) {
  const at = line.indexOf(':');
  if (at < 0) return [line.trim(), null];
  return [line.slice(0, at).trim(), line.slice(at + 1).trim()];
}

function loadFile(file) {
  const name = path.basename(file);
  const lines = fs.readFileSync(file, 'latin1').split('\n');
  const cases = [];
  let c = null;
  let sec = null;
  lines.forEach((line, idx) => {
    if (line.startsWith('=== ')) {
      c = {
        name: line.slice(4).trim().replace(/^name:\s*/, ''),
        where: `${name}:${idx + 1}`,
        kind: 'request', method: null, eof: false, lenientLf: false,
        ack: null, raw: '', verdict: null, messages: null, groups: [{}],
      };
      cases.push(c);
      sec = 'directives';
      return;
    }
    if (sec === 'input') {
      if (line === '--- expect') sec = 'expect';
      else c.raw += line;
      return;
    }
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    if (!c) throw new Error(`${name}:${idx + 1}: text outside a case`);
    if (sec === 'directives' && t === '--- input') {
      sec = 'input';
      return;
    }
    const [key, value] = splitKey(t);
    if (value === null) throw new Error(`${name}:${idx + 1}: cannot read "${t}"`);
    if (sec === 'directives') {
      if (key === 'kind') c.kind = value;
      else if (key === 'method') c.method = value;
      else if (key === 'eof') c.eof = value === 'yes';
      else if (key === 'lenient_lf') c.lenientLf = value === 'yes';
      else if (key === 'llhttp') c.ack = value;
      // limits are ours alone; cases that trip them acknowledge it
    } else if (key === 'verdict') {
      c.verdict = value;
    } else if (key === 'messages') {
      c.messages = Number(value);
    } else if (key === 'message') {
      c.groups.push({});
    } else if (key === 'body') {
      c.groups[c.groups.length - 1].body = unescape(value, c.where);
    }
  });
  for (const k of cases) k.input = unescape(k.raw, k.where);
  return cases;
}

// ---- running llhttp -----------------------------------------------------------------------

function runLlhttp(c) {
  const isResponse = c.kind === 'response';
  const p = new HTTPParser();
  const flags = c.lenientLf ? HTTPParser.kLenientOptionalCRBeforeLF : HTTPParser.kLenientNone;
  p.initialize(isResponse ? HTTPParser.RESPONSE : HTTPParser.REQUEST, {}, 0, flags);
  const msgs = [];
  let cur = null;
  p[HTTPParser.kOnMessageBegin] = () => {
    cur = { body: [], done: false };
    msgs.push(cur);
  };
  p[HTTPParser.kOnHeaders] = () => {};
  p[HTTPParser.kOnHeadersComplete] = (maj, min, hdrs, method, url, status) => {
    if (!isResponse) return 0;
    if (c.method === 'HEAD') return 1; // no body, as Node's http client does
    if (c.method === 'CONNECT' && status >= 200 && status < 300) return 2; // tunnel
    return 0;
  };
  p[HTTPParser.kOnBody] = (b) => { cur.body.push(Buffer.from(b)); };
  p[HTTPParser.kOnMessageComplete] = () => { cur.done = true; };
  p[HTTPParser.kOnExecute] = () => {};

  let err = null;
  let upgraded = false;
  const r = p.execute(c.input);
  if (r instanceof Error) err = r;
  else if (typeof r === 'number' && r < c.input.length) upgraded = true;
  if (!err && c.eof && !upgraded) {
    const f = p.finish();
    if (f instanceof Error) err = f;
  }
  p.close && p.close();
  let verdict;
  if (err) verdict = 'error';
  else if (msgs.length && !msgs[msgs.length - 1].done) verdict = 'incomplete';
  else verdict = 'ok';
  return {
    verdict, err, upgraded,
    done: msgs.filter((m) => m.done).length,
    bodies: msgs.map((m) => Buffer.concat(m.body)),
  };
}

// ---- comparing ----------------------------------------------------------------------------

function show(buf) {
  return JSON.stringify(buf.toString('latin1'));
}

function compare(c, got) {
  const ours = c.verdict.split(/\s+/)[0];
  const problems = [];
  if (ours !== got.verdict) {
    const why = got.err ? ` (${got.err.code}: ${got.err.reason})` : got.upgraded ? ' (upgrade)' : '';
    problems.push(`verdict: ours ${c.verdict}, llhttp ${got.verdict}${why}`);
    return problems;
  }
  if (ours === 'error') return problems;
  if (c.messages !== null && c.messages !== got.done)
    problems.push(`messages: ours ${c.messages}, llhttp ${got.done}`);
  c.groups.forEach((g, i) => {
    if (!g.body) return;
    const b = got.bodies[i] || Buffer.alloc(0);
    if (!b.equals(g.body)) problems.push(`message ${i + 1} body: ours ${show(g.body)}, llhttp ${show(b)}`);
  });
  return problems;
}

function main() {
  const args = process.argv.slice(2);
  const verbose = args.includes('-v');
  const dir = args.find((a) => a !== '-v') || __dirname;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.vec')).sort();
  let total = 0, agree = 0, acked = 0, unexpected = 0, stale = 0;
  for (const f of files) {
    for (const c of loadFile(path.join(dir, f))) {
      total++;
      if (!c.verdict) {
        console.log(`FORMAT ${c.name} (${c.where}): no verdict`);
        unexpected++;
        continue;
      }
      const problems = compare(c, runLlhttp(c));
      if (problems.length === 0) {
        agree++;
        if (c.ack) {
          stale++;
          console.log(`stale  ${c.name} (${c.where}): acknowledged "${c.ack}" but llhttp agrees`);
        }
      } else if (c.ack) {
        acked++;
        if (verbose) console.log(`acked  ${c.name} (${c.where}): ${problems.join('; ')}\n         -> ${c.ack}`);
      } else {
        unexpected++;
        console.log(`DIFFER ${c.name} (${c.where}): ${problems.join('; ')}`);
      }
    }
  }
  console.log(`llhttp-diff: ${total} cases, ${agree} agree, ${acked} acknowledged differences, ` +
              `${unexpected} unexpected` + (stale ? ` (${stale} stale acknowledgements)` : '') +
              ` [node ${process.versions.node}, llhttp ${process.versions.llhttp}]`);
  process.exit(unexpected ? 1 : 0);
}

main();
