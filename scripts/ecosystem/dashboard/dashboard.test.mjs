// End-to-end test of the dashboard in headless Chromium (Debian's chromium, driven by
// playwright-core). Starts a real `hookline serve` and a receiver (a Node HTTP server on
// 127.0.0.1), then does through the pages what a user does: sign in, create a config, send a
// test event, watch ingested hooks arrive in the delivery log, filter it, open a delivery
// (envelope byte for byte as the receiver got it, every attempt), redeliver, disable and enable
// a config, read its chart and health, and open a read-only portal link (the configs are there,
// a form is refused, a second use is refused). Screenshots go to target/test-artifacts/dashboard/.
//
// Exits non-zero on any failure; the whole run is bounded by DEADLINE_MS. No sleeps as
// synchronisation: pages are awaited by selector, the receiver by its requests, the server's
// asynchronous work by polling its API with a deadline.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NODE_DIR = process.env.HOOKLINE_TEST_NODE_DIR || path.join(ROOT, 'target', 'test-node');
const require = createRequire(path.join(NODE_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const BINARY = path.join(ROOT, 'target', 'debug', 'hookline');
const ARTIFACTS = path.join(ROOT, 'target', 'test-artifacts', 'dashboard');
const CHROMIUM = '/usr/bin/chromium';
const ADMIN_TOKEN = 'dashboard-e2e-admin-token';
const DEADLINE_MS = 180_000;
const SIGNATURE = 'e2e-signature';

const started = Date.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hookline-dashboard-'));
let server;
let receiver;
let context;
let page;
let shot = 0;

function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

// ---------- hookline ----------

async function startHookline() {
  const stderrPath = path.join(tmp, 'hookline.stderr.log');
  const stderr = fs.openSync(stderrPath, 'w');
  const proc = spawn(
    BINARY,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(tmp, 'data'),
      '--allow-private-targets', '--failing-after', '2'],
    { env: { ...process.env, HOOKLINE_ADMIN_TOKEN: ADMIN_TOKEN, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', stderr] },
  );
  const stderrTail = () => {
    try {
      return fs.readFileSync(stderrPath, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  const lines = readline.createInterface({ input: proc.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`hookline exited (${code}) before listening:\n${stderrTail()}`)));
  });
  if (!first.startsWith('hookline listening on ')) {
    proc.kill('SIGKILL');
    throw new Error(`hookline did not start: ${first}\n${stderrTail()}`);
  }
  return { proc, base: first.split(' ').pop().trim(), stderrTail };
}

async function stopHookline() {
  if (!server || server.proc.exitCode !== null) return;
  const exited = new Promise((resolve) => server.proc.once('exit', resolve));
  server.proc.kill('SIGTERM');
  const killer = setTimeout(() => server.proc.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(killer);
}

async function api(method, urlPath, { body, secret, admin } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (secret) headers['x-secret-key'] = secret;
  if (admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  const resp = await fetch(server.base + urlPath, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, json: text ? JSON.parse(text) : null };
}

async function expectApi(status, method, urlPath, opts) {
  const got = await api(method, urlPath, opts);
  assert.equal(got.status, status, `${method} ${urlPath}: ${JSON.stringify(got.json)}`);
  return got.json;
}

/** Polls `check` (which returns a value or undefined) until it gives a value or time runs out. */
async function eventually(what, check, ms = 20_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await delay(50);
  }
}

// ---------- the receiver ----------

function startReceiver() {
  const requests = [];
  const waiters = [];
  const scripted = []; // statuses to answer on /hooks before answering 200
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let status = 200;
      if (req.url === '/down') status = 500;
      else if (scripted.length) status = scripted.shift();
      const body = Buffer.concat(chunks);
      const record = { path: req.url, headers: req.headers, body, status };
      try {
        record.envelope = JSON.parse(body.toString('utf8'));
      } catch {
        record.envelope = null;
      }
      requests.push(record);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'stored' : 'receiver is down');
      for (const w of [...waiters]) {
        if (w.check()) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });
  const waitFor = (what, predicate, ms = 20_000) => new Promise((resolve, reject) => {
    const check = () => predicate(requests);
    if (check()) return resolve();
    const timer = setTimeout(() => reject(new Error(`receiver: timed out waiting for ${what}`)), ms);
    waiters.push({ check, resolve: () => { clearTimeout(timer); resolve(); } });
  });
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      resolve({
        url: (p) => `http://127.0.0.1:${port}${p}`,
        requests,
        scripted,
        waitFor,
        close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
      });
    });
  });
}

const delivered = (requests, hookId) => requests.some(
  (r) => r.status === 200 && r.envelope?.hooks?.some((h) => h.hookId === hookId),
);

// ---------- the browser ----------

async function screenshot(name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${path.relative(ROOT, file)}`);
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

/** Clicks something that submits a form or follows a link, and waits for the new page. */
async function navigate(action) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
}

async function filterLog(fields) {
  await page.goto(`${server.base}/ui/deliveries`);
  for (const [name, value] of Object.entries(fields)) {
    const field = page.locator(`#filters [name="${name}"]`);
    if ((await field.evaluate((el) => el.tagName)) === 'SELECT') await field.selectOption(value);
    else await field.fill(value);
  }
  await navigate(() => page.click('#filters button[type="submit"]'));
}

async function logRows() {
  return page.locator('#deliveries tbody tr').evaluateAll((rows) => rows.map((r) => ({
    hooksId: r.dataset.hooksId,
    status: r.dataset.status,
    text: r.textContent,
  })));
}

// ---------- the scenario ----------

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of fs.readdirSync(ARTIFACTS)) if (f.endsWith('.png')) fs.rmSync(path.join(ARTIFACTS, f));
  assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run cargo build first`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);

  receiver = await startReceiver();
  server = await startHookline();
  log(`hookline at ${server.base}`);
  const created = await expectApi(201, 'POST', '/v1/appkeys', { body: { name: 'dashboard e2e' }, admin: true });
  const { appKey, secretKey } = created.appKey;

  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(15_000);
  page = context.pages()[0] ?? await context.newPage();
  const pageProblems = [];
  // Pages answered 401/400 on purpose (a wrong secret, an invalid form) log "Failed to load
  // resource"; every sub-resource must load.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageProblems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400) pageProblems.push(`${r.status()} for ${r.url()}`);
  });
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
  // Nothing but the hookline server may be asked for anything.
  page.on('request', (r) => {
    if (!r.url().startsWith(server.base) && !r.url().startsWith('data:')) pageProblems.push(`foreign request: ${r.url()}`);
  });

  // Sign in: a wrong secret is refused, the right one opens the dashboard.
  log('sign in');
  await page.goto(`${server.base}/`);
  await page.fill('input[name="appKey"]', appKey);
  await page.fill('input[name="secretKey"]', 'not-the-secret');
  await navigate(() => page.click('button[type="submit"]'));
  assert.match(await text('.flash.error'), /do not match/);
  assert.equal(await page.inputValue('input[name="appKey"]'), appKey);
  await page.fill('input[name="secretKey"]', secretKey);
  await screenshot('sign-in');
  await navigate(() => page.click('button[type="submit"]'));
  assert.equal(await text('h1'), 'Webhook configs');
  assert.equal(await text('header .who code'), appKey);
  const cookies = await context.cookies(server.base);
  const session = cookies.find((c) => c.name === 'hookline_session');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  await screenshot('configs-empty');

  // Create a config through the form; the API's validation speaks first.
  log('create a config');
  await navigate(() => page.click('a:has-text("New config")'));
  await page.fill('input[name="description"]', 'Orders <receiver> & co');
  await page.selectOption('select[name="productName"]', 'SMS');
  await page.fill('input[name="url"]', receiver.url('/hooks'));
  await page.fill('input[name="signature"]', SIGNATURE);
  await page.fill('input[name="retrySchedule"]', '300ms, 300ms, 300ms');
  await navigate(() => page.click('#config-form button[type="submit"]'));
  assert.match(await text('.flash.error'), /^events: /, 'no event ticked: the API message');
  assert.equal(await page.inputValue('input[name="url"]'), receiver.url('/hooks'), 'the form keeps what was typed');
  await page.check('input[name="events"][value="MESSAGE_RESULT_UPDATE"]');
  await page.check('input[name="events"][value="UNSUBSCRIBE"]');
  await page.fill('input[name="timeoutMs"]', '3000');
  await screenshot('config-form');
  await navigate(() => page.click('#config-form button[type="submit"]'));
  assert.equal(await text('#config-name'), 'Orders <receiver> & co', 'description shown as text');
  assert.match(await text('.flash.ok'), /Config created/);
  const configId = page.url().split('/').pop();
  const apiConfig = (await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${configId}`, { secret: secretKey })).webhookConfig;
  assert.deepEqual(apiConfig.events, ['MESSAGE_RESULT_UPDATE', 'UNSUBSCRIBE']);
  assert.equal(apiConfig.timeoutMs, 3000);
  assert.deepEqual(apiConfig.retrySchedule, ['300ms', '300ms', '300ms']);
  assert.equal(await text('#health-state'), 'HEALTHY');

  // A test event: the receiver gets it, the page shows the attempt.
  log('send a test event');
  await page.selectOption('#test-event', 'UNSUBSCRIBE');
  await navigate(() => page.click('#send-test'));
  assert.match(await text('#test-result'), /Test event delivered/);
  assert.equal(await text('#test-outcome'), 'HTTP 200');
  const testHooksId = await text('#test-result code');
  const testRequest = receiver.requests.find((r) => r.envelope?.hooksId === testHooksId);
  assert.ok(testRequest, 'the receiver got the test event');
  assert.equal(testRequest.headers['x-toast-webhook-signature'], SIGNATURE);
  assert.equal(testRequest.envelope.event, 'UNSUBSCRIBE');
  await screenshot('test-event');

  // Hooks ingested through the API; the first request to the receiver fails once.
  log('ingest hooks');
  receiver.scripted.push(500);
  const resultHooks = [1, 2, 3].map((i) => ({
    hookId: `e2e-result-${i}`, senderType: 'NORMAL_SMS', requestId: '20240429205802y0Tl7Gbz0e0',
    recipientSeq: i, requestDate: '2024-04-29T20:58:02', receiveDate: '2024-04-29T20:58:04',
    sendNo: '15446859', recipientNo: '01012341234', messageStatus: 'COMPLETED',
    recipientGroupingKey: 'RecipientGroupingKey', senderGroupingKey: 'SenderGroupingKey',
    resultCode: '1000', messageCount: 1,
  }));
  await expectApi(202, 'POST', `/v1/appkeys/${appKey}/events`, {
    secret: secretKey, body: { productName: 'SMS', event: 'MESSAGE_RESULT_UPDATE', hooks: resultHooks },
  });
  await receiver.waitFor('the result hooks, after one failure', (rs) => resultHooks.every((h) => delivered(rs, h.hookId)));
  await expectApi(202, 'POST', `/v1/appkeys/${appKey}/events`, {
    secret: secretKey,
    body: { productName: 'SMS', event: 'UNSUBSCRIBE', hooks: [{
      hookId: 'e2e-unsub-1', recipientNo: '01000000001', unsubscribeNo: '08012341234',
      enterpriseName: 'NHN Cloud', createdDateTime: '2020-09-09T11:25:10.000+09:00',
    }] },
  });
  await receiver.waitFor('the unsubscribe hook', (rs) => delivered(rs, 'e2e-unsub-1'));
  const logged = await eventually('every delivery SUCCEEDED in the log', async () => {
    const { deliveries } = await expectApi(200, 'GET', `/v1/appkeys/${appKey}/deliveries`, { secret: secretKey });
    // The test send is in the log too (marked `test`): the two real deliveries are awaited.
    const real = deliveries.filter((d) => !d.test);
    return real.length >= 2 && deliveries.every((d) => d.status === 'SUCCEEDED') ? deliveries : undefined;
  });
  const resultDelivery = logged.find((d) => d.event === 'MESSAGE_RESULT_UPDATE' && d.attemptCount === 2);
  assert.ok(resultDelivery, `a result delivery with two attempts: ${JSON.stringify(logged)}`);
  const unsubDelivery = logged.find((d) => d.event === 'UNSUBSCRIBE' && !d.test);
  const testDelivery = logged.find((d) => d.test);
  assert.ok(testDelivery && testDelivery.hooksId === testHooksId, `the test send is logged as a test: ${JSON.stringify(logged)}`);

  // The delivery log and its filters.
  log('delivery log');
  await navigate(() => page.click('header nav a:has-text("Deliveries")'));
  let rows = await logRows();
  assert.deepEqual(new Set(rows.map((r) => r.hooksId)), new Set(logged.map((d) => d.hooksId)));
  assert.ok(rows.every((r) => r.status === 'SUCCEEDED'));
  await screenshot('delivery-log');

  await filterLog({ event: 'UNSUBSCRIBE' });
  rows = await logRows();
  assert.deepEqual(
    new Set(rows.map((r) => r.hooksId)),
    new Set([unsubDelivery.hooksId, testDelivery.hooksId]),
    'event filter: the UNSUBSCRIBE delivery and the UNSUBSCRIBE test send',
  );
  await filterLog({ hookId: 'e2e-result-2' });
  rows = await logRows();
  assert.ok(rows.length >= 1 && rows.every((r) => logged.find((d) => d.hooksId === r.hooksId)?.hookIds.includes('e2e-result-2')), 'hookId filter');
  await filterLog({ webhookConfigId: configId, status: 'SUCCEEDED' });
  assert.equal((await logRows()).length, logged.length, 'config and status filter');
  await filterLog({ status: 'FAILED' });
  await page.waitForSelector('#no-deliveries');
  const hourAgo = new Date(Date.now() - 3600_000).toISOString().slice(0, 19);
  const inAnHour = new Date(Date.now() + 3600_000).toISOString().slice(0, 19);
  await filterLog({ since: inAnHour });
  await page.waitForSelector('#no-deliveries');
  await filterLog({ since: hourAgo, until: inAnHour, event: 'MESSAGE_RESULT_UPDATE' });
  rows = await logRows();
  assert.ok(rows.some((r) => r.hooksId === resultDelivery.hooksId), 'time window filter');
  assert.ok(rows.every((r) => r.text.includes('MESSAGE_RESULT_UPDATE')));
  await screenshot('delivery-log-filtered');

  // One delivery: the envelope exactly as the receiver got it, and both attempts.
  log('one delivery');
  await navigate(() => page.click(`#deliveries a:has-text("${resultDelivery.hooksId}")`));
  assert.equal(await text('#hooks-id'), resultDelivery.hooksId);
  const received = receiver.requests.filter((r) => r.envelope?.hooksId === resultDelivery.hooksId);
  assert.equal(received.length, 2, 'the receiver saw two attempts');
  const envelopeShown = await page.locator('#envelope').textContent();
  assert.equal(envelopeShown, received[1].body.toString('utf8'), 'envelope byte for byte');
  const attempts = await page.locator('#attempts tbody tr').allTextContents();
  assert.equal(attempts.length, 2);
  assert.match(attempts[0], /HTTP 500/);
  assert.match(attempts[0], /receiver is down/);
  assert.match(attempts[1], /HTTP 200/);
  await screenshot('delivery');

  // Redeliver: a new delivery of the same hooks, which the receiver gets.
  log('redeliver');
  await navigate(() => page.click('#redeliver'));
  assert.match(await text('.flash.ok'), /Redelivered/);
  const newHooksId = await text('#hooks-id');
  assert.notEqual(newHooksId, resultDelivery.hooksId);
  assert.deepEqual((await page.locator('#hook-ids').innerText()).trim().split(/\s+/).sort(), [...resultDelivery.hookIds].sort());
  await receiver.waitFor('the redelivery', (rs) => rs.some((r) => r.status === 200 && r.envelope?.hooksId === newHooksId));
  await eventually('the redelivery SUCCEEDED', async () => {
    const { delivery } = await expectApi(200, 'GET', `/v1/appkeys/${appKey}/deliveries/${newHooksId}`, { secret: secretKey });
    return delivery.status === 'SUCCEEDED';
  });
  await page.reload();
  assert.equal(await text('#delivery-status'), 'SUCCEEDED');
  await screenshot('redelivered');

  // The config page: chart and health.
  log('chart and health');
  await page.goto(`${server.base}/ui/configs/${configId}`);
  assert.equal(await text('#health-state'), 'HEALTHY');
  assert.equal(await text('#consecutive-failures'), '0');
  assert.notEqual(await text('#last-success'), 'never');
  assert.equal(await page.getAttribute('#chart .summary', 'data-attempts'), '5', 'two + one + one redelivery + the test send (recorded like any attempt)');
  assert.match(await text('#chart .summary'), /80 %/); // 4 of the 5 succeeded
  assert.ok(await page.locator('svg.chart.success rect.bar').count() >= 1, 'success bars');
  assert.ok(await page.locator('svg.chart.latency circle.avg').count() >= 1, 'latency points');
  assert.ok(await page.locator('#recent tbody tr').count() >= 3);
  await screenshot('config-chart-health');
  await navigate(() => page.click('#chart .tabs a:has-text("24h")'));
  assert.equal(await page.getAttribute('#chart .tabs a[aria-current]', 'href'), `/ui/configs/${configId}?range=24h#chart`);
  assert.equal(await page.getAttribute('#chart .summary', 'data-attempts'), '5');

  // Disable and enable.
  log('disable and enable');
  await navigate(() => page.click('#toggle-enabled'));
  assert.match(await text('#enabled-state'), /PAUSED/);
  assert.equal((await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${configId}`, { secret: secretKey })).webhookConfig.enabled, false);
  await screenshot('config-disabled');
  await navigate(() => page.click('#toggle-enabled'));
  assert.match(await text('#enabled-state'), /ENABLED/);
  const afterToggle = (await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${configId}`, { secret: secretKey })).webhookConfig;
  assert.equal(afterToggle.enabled, true);
  assert.deepEqual(afterToggle.retrySchedule, ['300ms', '300ms', '300ms'], 'toggling keeps the settings');

  // Edit.
  log('edit');
  await navigate(() => page.click('a.button:has-text("Edit")'));
  assert.equal(await page.inputValue('input[name="timeoutMs"]'), '3000');
  await page.fill('input[name="description"]', 'Orders receiver');
  await page.fill('input[name="maxHooksPerRequest"]', '20');
  await navigate(() => page.click('#config-form button[type="submit"]'));
  assert.equal(await text('#config-name'), 'Orders receiver');
  assert.equal((await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${configId}`, { secret: secretKey })).webhookConfig.maxHooksPerRequest, 20);

  // A config whose receiver is down: FAILING health and red bars.
  log('a failing config');
  const down = (await expectApi(201, 'POST', `/v1/appkeys/${appKey}/webhook-configs`, {
    secret: secretKey,
    body: { productName: 'SMS', events: ['CONVERSION_BLOCK'], url: receiver.url('/down'), signature: SIGNATURE,
      description: 'Receiver that is down', retrySchedule: ['100ms', '100ms', '100ms', '100ms'] },
  })).webhookConfig;
  await expectApi(202, 'POST', `/v1/appkeys/${appKey}/events`, {
    secret: secretKey,
    body: { productName: 'SMS', event: 'CONVERSION_BLOCK', hooks: [{
      hookId: 'e2e-block-1', countryCode: '1', blockedDateTime: '2024-05-28T09:00:00.000+09:00',
    }] },
  });
  await eventually('the down config FAILING', async () => {
    const { webhookConfig } = await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${down.webhookConfigId}`, { secret: secretKey });
    return webhookConfig.health.state === 'FAILING';
  });
  await page.goto(`${server.base}/ui/configs/${down.webhookConfigId}`);
  assert.equal(await text('#health-state'), 'FAILING');
  assert.ok(Number(await text('#consecutive-failures')) >= 2);
  assert.notEqual(await text('#last-failure'), 'never');
  assert.ok(await page.locator('svg.chart.success rect.bar.bad').count() >= 1, 'red bars');
  await screenshot('config-failing');
  await page.goto(`${server.base}/`);
  assert.equal(await page.locator('#configs tbody tr').count(), 2);
  assert.match(await page.locator(`#configs tr[data-config-id="${down.webhookConfigId}"]`).textContent(), /FAILING/);
  await screenshot('configs');

  // Sign out: pages need a session again.
  log('sign out');
  await navigate(() => page.click('header button:has-text("Sign out")'));
  await page.waitForSelector('input[name="secretKey"]');
  await page.goto(`${server.base}/ui/deliveries`);
  assert.equal(new URL(page.url()).pathname, '/');
  await page.waitForSelector('input[name="secretKey"]');

  // A read-only portal link: opens the dashboard once, without the secret key; its forms are
  // refused; a second use is refused.
  log('portal link');
  const { portalLink } = await expectApi(201, 'POST', `/v1/appkeys/${appKey}/portal-links`, {
    secret: secretKey, body: { readOnly: true, expiresIn: '5m' },
  });
  assert.equal(portalLink.readOnly, true);
  assert.match(portalLink.url, /^\/ui\/portal\/[A-Za-z0-9]{32,}$/, 'a path without --public-url');
  await page.goto(`${server.base}${portalLink.url}`);
  assert.equal(new URL(page.url()).pathname, '/', 'the link redirects to the dashboard');
  assert.equal(await text('h1'), 'Webhook configs');
  assert.equal(await text('header .who code'), appKey);
  assert.equal(await text('#read-only'), 'read-only');
  assert.equal(await page.locator('#configs tbody tr').count(), 2, 'the configs are listed');
  assert.ok(!(await page.content()).includes(secretKey), 'the secret key is not on the page');
  const portalSession = (await context.cookies(server.base)).find((c) => c.name === 'hookline_session');
  assert.ok(portalSession, 'the link set the session cookie');
  assert.equal(portalSession.httpOnly, true);
  assert.equal(portalSession.sameSite, 'Strict');
  await screenshot('portal-read-only');
  await page.goto(`${server.base}/ui/configs/${configId}`);
  assert.equal(await text('#config-name'), 'Orders receiver');
  const [refused] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#toggle-enabled'),
  ]);
  assert.equal(refused.status(), 403, 'a read-only session\'s form');
  assert.equal(await text('h1'), 'Read-only session');
  assert.equal(
    (await expectApi(200, 'GET', `/v1/appkeys/${appKey}/webhook-configs/${configId}`, { secret: secretKey })).webhookConfig.enabled,
    true,
    'the refused form changed nothing',
  );
  await screenshot('portal-form-refused');
  const secondUse = await page.goto(`${server.base}${portalLink.url}`);
  assert.equal(secondUse.status(), 410, 'a second use of the link');
  assert.equal(await text('h1'), 'Link no longer valid');
  assert.match(await text('#portal-gone p'), /already been used/);
  await screenshot('portal-link-used');

  assert.deepEqual(pageProblems, [], 'no console errors, CSP violations or foreign requests');
}

async function cleanup() {
  await context?.close().catch(() => {});
  await stopHookline().catch(() => {});
  await receiver?.close().catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
}

const deadline = setTimeout(async () => {
  console.error(`dashboard e2e: FAILED: still running after ${DEADLINE_MS / 1000}s`);
  await page?.screenshot({ path: path.join(ARTIFACTS, 'timeout.png'), fullPage: true }).catch(() => {});
  server?.proc.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS);

try {
  await main();
  log('dashboard e2e: passed');
  clearTimeout(deadline);
  await cleanup();
} catch (e) {
  clearTimeout(deadline);
  console.error(`dashboard e2e: FAILED: ${e.stack || e}`);
  if (page) {
    console.error(`page: ${page.url()}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
  }
  if (server) console.error(`hookline stderr (tail):\n${server.stderrTail()}`);
  await cleanup();
  process.exit(1);
}
