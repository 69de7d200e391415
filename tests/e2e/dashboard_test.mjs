// dashboard_test.mjs: Debian's chromium headless, driven by playwright-core, through every view
// of the dashboard against a running stack (dashboard_test.py starts it and passes
// SHOAL_ADMIN, SHOAL_TOKEN_TEXT, SHOAL_BIN, SHOAL_ADDR, SHOAL_CHROMIUM, SHOAL_E2E_ARTIFACTS).
// Fails on any console error or page error (CSP violations included). Screenshots of each view
// go to SHOAL_E2E_ARTIFACTS.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const admin = process.env.SHOAL_ADMIN;
const token = process.env.SHOAL_TOKEN_TEXT;
const out = process.env.SHOAL_E2E_ARTIFACTS;
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
let failed = 0;
const consoleErrors = [];

async function check(name, fn) {
    const t0 = Date.now();
    try {
        await fn();
        console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(2)}s)`);
    } catch (err) {
        failed++;
        console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    }
}
function assert(cond, what) {
    if (!cond) throw new Error(what);
}
async function until(fn, what, timeoutMs = 20000) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
        await new Promise((r) => setTimeout(r, 200));
    }
}
function ps() {
    return JSON.parse(execFileSync(process.env.SHOAL_BIN, ['ps', '--json'], {
        env: { ...process.env, SHOAL_TOKEN: token, SHOAL_ADDR: process.env.SHOAL_ADDR }, encoding: 'utf8' }));
}

const browser = await chromium.launch({ executablePath: process.env.SHOAL_CHROMIUM, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`); });
page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
page.on('dialog', (d) => d.dismiss()); // the UI uses its own <dialog>, never window.confirm
const shot = (name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
async function axe(view) {
    await page.evaluate(axeSource); // through the debugger: the page's CSP stays as it is
    const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert(bad.length === 0, `${view}: axe: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`).join('; ')}`);
}

await check('login with the root token', async () => {
    await page.goto(admin + '/ui/');
    await page.waitForSelector('#token');
    const fcp = await page.evaluate(() => {
        const e = performance.getEntriesByName('first-contentful-paint')[0];
        return e ? Math.round(e.startTime) : null;
    });
    console.log(`     first contentful paint: ${fcp} ms (budget 300 ms)`);
    assert(fcp !== null && fcp < 300, `first paint ${fcp} ms, over 300 ms`);
    await shot('login');
    await axe('login');
    await page.fill('#token', token);
    await page.press('#token', 'Enter');
    await page.waitForSelector('#logout');
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === 'shoal_session');
    assert(c && c.httpOnly && c.sameSite === 'Strict', 'an HttpOnly SameSite=Strict shoal_session cookie');
});

await check('service map shows greeter -> names', async () => {
    await page.goto(admin + '/ui/#/map');
    await page.waitForSelector('svg.map g[data-node="greeter"]');
    await page.waitForSelector('tr[data-edge="greeter->names"]');
    await page.waitForSelector('svg.map g[data-node="names"]');
    await shot('map');
    await axe('map');
    // keyboard: focus the greeter node and press Enter to open it
    await page.focus('svg.map g[data-node="greeter"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => location.hash === '#/service/greeter');
});

await check('service detail: charts from the metrics history', async () => {
    await page.waitForSelector('.uplot');
    assert((await page.locator('.uplot').count()) === 3, 'three charts');
    await shot('service');
    await axe('service');
});

await check('services: scale greeter to 3 changes shoal ps', async () => {
    await page.goto(admin + '/ui/#/services');
    const row = page.locator('tr[data-service="greeter"]');
    await row.waitFor();
    await shot('services');
    await axe('services');
    await row.locator('input.replicas').fill('3');
    await row.locator('button[data-action="scale"]').click();
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-yes');
    await until(() => ps().filter((i) => i.service === 'greeter' && !i.retiring).length === 3, 'three greeter instances in shoal ps', 30000);
});

await check('traces: search and one waterfall', async () => {
    await page.goto(admin + '/ui/#/traces');
    const link = await page.waitForSelector('tr[data-trace] a');
    await shot('traces');
    await axe('traces');
    await link.click();
    await page.waitForSelector('.wf .bar span');
    await shot('trace');
});

await check('logs: search and live tail', async () => {
    await page.goto(admin + '/ui/#/logs?service=greeter');
    await page.waitForSelector('tr[data-seq]');
    await page.check('#lg-tail');
    await shot('logs');
    await axe('logs');
});

await check('config: roll greeting back to v1', async () => {
    await page.goto(admin + '/ui/#/config?prefix=config%2Fgreeter%2F&key=config%2Fgreeter%2Fgreeting');
    await page.waitForSelector('#cf-value');
    assert((await page.inputValue('#cf-value')) === 'v2', 'the current value v2');
    await shot('config');
    await axe('config');
    const btn = page.locator('button[data-action="rollback"]').first();
    await btn.click();
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-yes');
    await until(async () => (await page.inputValue('#cf-value').catch(() => '')) === 'v1', 'the value v1 in the page');
});

await check('a phone-sized screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(admin + '/ui/#/services');
    await page.waitForSelector('tr[data-service="greeter"]');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the page is ${overflow}px wider than the screen`);
    await shot('services-phone');
});

await check('log out', async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.click('#logout');
    await page.waitForSelector('#token');
    await page.reload();
    await page.waitForSelector('#token');
});

await check('a read token gets a read-only page', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const p = await ctx.newPage();
    p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`read: ${p.url()}: ${m.text()}`); });
    p.on('pageerror', (e) => consoleErrors.push(`read: ${p.url()}: ${e.message}`));
    await p.goto(admin + '/ui/');
    await p.fill('#token', process.env.SHOAL_READ_TOKEN);
    await p.press('#token', 'Enter');
    await p.waitForSelector('#logout');
    assert((await p.textContent('#who')).includes('read-only'), 'the header says read-only');
    await p.goto(admin + '/ui/#/services');
    await p.waitForSelector('tr[data-service="greeter"]');
    assert((await p.locator('button[data-action]').count()) === 0, 'no scale or restart button');
    await p.goto(admin + '/ui/#/config?prefix=config%2Fgreeter%2F&key=config%2Fgreeter%2Fgreeting');
    await p.waitForSelector('#cf-value');
    assert((await p.locator('button[data-action="rollback"], #cf-save').count()) === 0, 'no save or rollback button');
    await ctx.close();
});

await check('no console errors', async () => {
    assert(consoleErrors.length === 0, consoleErrors.join('\n'));
});
await browser.close();
console.log(`${failed ? 'FAIL' : 'ok'}: browser checks, ${failed} failed`);
process.exit(failed ? 1 : 0);
