// build.mjs: bundles the dashboard with esbuild into OUT_DIR: index.html, app.js, app.css, and
// a gzipped copy of each (the admin API serves those to clients that accept gzip). Prints the
// sizes; fails when the gzipped total passes the budget (docs/dashboard.md).
// Usage: node build.mjs OUT_DIR
import * as esbuild from 'esbuild';
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
const BUDGET_GZ = 300 * 1024;
if (!out) {
    console.error('usage: node build.mjs OUT_DIR');
    process.exit(2);
}
mkdirSync(out, { recursive: true });
await esbuild.build({
    entryPoints: { app: join(here, 'src/app.js') },
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['es2020'],
    outdir: out,
    legalComments: 'none',
    logLevel: 'warning',
});
copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));
let total = 0;
const sizes = [];
for (const name of ['index.html', 'app.js', 'app.css']) {
    const raw = readFileSync(join(out, name));
    const gz = gzipSync(raw, { level: 9 });
    writeFileSync(join(out, name + '.gz'), gz);
    total += gz.length;
    sizes.push(`${name} ${raw.length} B (${gz.length} B gzipped)`);
}
console.log(`dashboard: ${sizes.join(', ')}; ${total} B gzipped in all (budget ${BUDGET_GZ})`);
if (total > BUDGET_GZ) {
    console.error(`dashboard: over the budget of ${BUDGET_GZ} B gzipped`);
    process.exit(1);
}
