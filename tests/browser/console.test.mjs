// The web console (API.md §10) in a real browser: Debian's chromium driven
// by playwright-core against the real daemon on 127.0.0.1. Every request the
// pages make is recorded (none may leave the origin), every dialog is
// counted (none may open), and each page is saved as a screenshot under
// $CS_BROWSER_OUT (default tests/browser/out/).
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {createRequire} from 'node:module';
import {mkdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {startDaemon} from './daemon.mjs';

// playwright-core from `npm ci` (ctest's browser.setup installs it in the build dir).
const require = createRequire(join(process.env.CS_BROWSER_MODULES || new URL('.', import.meta.url).pathname, 'x.js'));
const {chromium} = require('playwright-core');

const OUT = process.env.CS_BROWSER_OUT || new URL('./out/', import.meta.url).pathname;
const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const WAIT = 10000; // every wait for the page is bounded by this
const BOUND = {timeout: 90000}; // and every test
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let d; let browser;
const requests = []; // every URL any page asked for
const dialogs = [];  // every alert/confirm/prompt that opened
const refused = [];  // console messages about anything the CSP blocked
const pageErrors = []; // uncaught exceptions in a page
const origins = new Set(); // the daemons' origins: the only ones a page may ask

before(async () => {
  mkdirSync(OUT, {recursive: true});
  d = await startDaemon();
  origins.add(d.url);
  browser = await chromium.launch({executablePath: '/usr/bin/chromium', args: ARGS, timeout: 30000});
});

after(async () => {
  await browser?.close();
  if (d) {
    const {rc, log} = await d.stop();
    assert.equal(rc, 0, 'serve did not exit cleanly');
    assert.ok(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(log), 'sanitizer report in the log');
  }
});

/** A fresh browser context (its own sessionStorage), recording requests and dialogs. */
async function openPage(viewport = {width: 1280, height: 800}) {
  const context = await browser.newContext({viewport});
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', (dlg) => { dialogs.push(dlg.message()); dlg.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) refused.push(m.text()); });
  return {context, page};
}

async function login(page, id, secret) {
  await page.goto(d.url + '/');
  await page.getByLabel('Access key ID').fill(id);
  await page.getByLabel('Secret key').fill(secret);
  await page.getByRole('button', {name: 'Log in'}).click();
  await page.getByRole('button', {name: 'Log out'}).waitFor();
}

const shot = (page, name) => page.screenshot({path: join(OUT, name + '.png'), fullPage: true});

async function newKey(role, scope) {
  const r = await d.api('POST', '/access_keys', {name: 'browser-' + role, role, ...(scope ? {scope} : {})});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

const AWS = {type: 'aws', accountID: 'AKIAIOSFODNN7EXAMPLE', secret: {plain: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'}};

test('headers of the page and its assets; / redirects to /ui/', BOUND, async () => {
  const {context, page} = await openPage();
  const seen = [];
  page.on('response', (r) => seen.push(r));
  const first = await page.goto(d.url + '/');
  assert.equal(new URL(page.url()).pathname, '/ui/');
  assert.equal(first.request().redirectedFrom()?.url(), d.url + '/');
  await page.getByLabel('Access key ID').waitFor();
  const ui = seen.filter((r) => new URL(r.url()).pathname.startsWith('/ui/'));
  assert.ok(ui.length >= 5, ui.map((r) => r.url()).join(' '));
  for (const r of ui) {
    const h = r.headers();
    assert.equal(r.status(), 200, r.url());
    assert.equal(h['content-security-policy'], "default-src 'self'", r.url());
    assert.equal(h['x-frame-options'], 'DENY', r.url());
    assert.equal(h['referrer-policy'], 'no-referrer', r.url());
    const path = new URL(r.url()).pathname;
    if (path === '/ui/') {
      assert.equal(h['content-type'], 'text/html; charset=utf-8');
      assert.equal(h['cache-control'], 'no-cache');
    } else {
      assert.match(path, /^\/ui\/assets\/[0-9a-f]{16}\/[a-z]+\.(js|css|svg)$/);
      assert.equal(h['cache-control'], 'public, max-age=31536000, immutable', path);
      const want = {js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml'};
      assert.equal(h['content-type'], want[path.split('.').pop()], path);
    }
  }
  // The stylesheet applied (a CSP or type refusal would leave the page unstyled).
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector('.bar')).backgroundColor);
  assert.equal(bg, 'rgb(15, 23, 42)');
  await shot(page, 'login');
  await context.close();
});

test('log in and out; the token is never in localStorage or a cookie', BOUND, async () => {
  const {context, page} = await openPage();
  await page.goto(d.url + '/ui/');
  // Keyboard only: the labelled fields and the button in tab order, Enter submits.
  await page.getByLabel('Access key ID').focus();
  await page.keyboard.type(d.admin.id);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-secret');
  await page.keyboard.type('wrong-secret');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Log in');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({hasText: 'Log in failed'}).waitFor();
  assert.match(await page.getByRole('alert').textContent(), /invalid_credentials/);
  await shot(page, 'login-failed');
  await page.getByLabel('Secret key').fill(d.admin.secret);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', {name: 'Credentials store'}).waitFor();
  const token = await page.evaluate(() => sessionStorage.getItem('credstore.token'));
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.deepEqual(await context.cookies(), []);
  assert.match(await page.locator('#who').textContent(), /\(admin\)/);
  await page.getByRole('button', {name: 'Log out'}).click();
  await page.getByRole('button', {name: 'Log in'}).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.getByRole('link', {name: 'Credentials store'}).isVisible(), false);
  await context.close();
});

test('add credentials of three types through the form', BOUND, async () => {
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  const kube = readFileSync(join(FIXTURES, 'kubeconfig-token.yaml'), 'utf8');
  const cases = [
    {name: 'ui-aws', type: 'aws', fill: {'Access key ID': 'AKIAIOSFODNN7EXAMPLE', 'Secret access key': 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      'Role ARN': 'arn:aws:iam::123456789012:role/scanner', 'Region': 'eu-west-1'}, check: ['Use STS regional endpoint'],
    want: {accountID: 'AKIAIOSFODNN7EXAMPLE', roleArn: 'arn:aws:iam::123456789012:role/scanner', region: 'eu-west-1', useSTSRegionalEndpoint: true}},
    {name: 'ui-ibm', type: 'ibmCloud', fill: {'Account GUID': '0123456789abcdef', 'API key': 'ibm-api-key-from-the-form'},
      want: {accountGUID: '0123456789abcdef'}},
    {name: 'ui-kube', type: 'kubeconfig', fill: {'Kubeconfig': kube}, want: {kubeconfig: {currentContext: 'credstore-scanner@kind-credstore',
      clusters: [{name: 'kind-credstore', server: 'https://10.96.0.1:6443'}]}}},
    {name: 'ui-gcp-token', type: 'gcp', fill: {'API token': 'AIzaSyD-test-api-token-1234567890'}, want: {}},
  ];
  for (const c of cases) {
    await page.locator('#nav').getByRole('link', {name: 'Credentials store'}).click();
    await page.getByRole('button', {name: 'Add credential'}).click();
    await page.getByLabel('Name').fill(c.name);
    await page.getByLabel('Type', {exact: true}).selectOption(c.type);
    await page.getByLabel('Description').fill('added in the browser: ' + c.type);
    for (const [label, value] of Object.entries(c.fill)) await page.getByLabel(label, {exact: true}).fill(value);
    for (const label of c.check || []) await page.getByLabel(label, {exact: true}).check();
    if (c.type === 'aws') await shot(page, 'add-credential');
    await page.getByRole('button', {name: 'Save'}).click();
    await page.getByRole('heading', {name: c.name, exact: true}).waitFor();
    await page.getByText('Added ' + c.name + '.').waitFor();
    const r = await d.api('GET', '/credentials/' + c.name);
    assert.equal(r.status, 200);
    assert.equal(r.body.type, c.type);
    assert.equal(r.body.description, 'added in the browser: ' + c.type);
    for (const [k, v] of Object.entries(c.want)) assert.deepEqual(r.body[k], v, k);
    // The page shows metadata, never the secret.
    const text = await page.locator('main').textContent();
    for (const secret of Object.values(c.fill).filter((v) => /key|KEY/.test(v) && !v.startsWith('AKIA'))) {
      assert.ok(!text.includes(secret), 'secret on the page');
    }
  }
  if (cases.length) await shot(page, 'credential');
  await page.getByRole('link', {name: 'Credentials store'}).first().click();
  const table = page.locator('#credentials');
  for (const c of cases) await table.getByRole('link', {name: c.name, exact: true}).waitFor();
  const aws = table.locator('tr', {has: page.getByRole('link', {name: 'ui-aws', exact: true})});
  assert.deepEqual(await aws.locator('td').allTextContents().then((t) => t.slice(0, 5)),
    ['ui-aws', 'AWS', 'added in the browser: aws', '0', '1']);
  // The type filter and the search box narrow the table.
  await page.getByLabel('Type', {exact: true}).selectOption('ibmCloud');
  await table.getByRole('link', {name: 'ui-aws'}).waitFor({state: 'detached'});
  assert.equal(await table.getByRole('link', {name: 'ui-ibm'}).count(), 1);
  await page.getByLabel('Type', {exact: true}).selectOption('');
  await page.getByLabel('Search').fill('ui-kube');
  await table.getByRole('link', {name: 'ui-aws'}).waitFor({state: 'detached'});
  assert.equal(await table.getByRole('link', {name: 'ui-kube'}).count(), 1);
  await context.close();
});

test('a 400 is shown at the field it names', BOUND, async () => {
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  await page.goto(d.url + '/ui/#/new-credential');
  await page.getByLabel('Name').fill('ui-bad-arn');
  await page.getByLabel('Access key ID').fill('AKIAIOSFODNN7EXAMPLE');
  await page.getByLabel('Secret access key').fill('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
  await page.getByLabel('Role ARN').fill('not-an-arn');
  await page.getByRole('button', {name: 'Save'}).click();
  const err = page.locator('#cred-roleArn-err');
  await err.waitFor();
  assert.match(await err.textContent(), /roleArn must be an IAM role ARN/);
  assert.equal(await page.getByLabel('Role ARN').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'cred-roleArn');
  assert.match(await page.locator('.form-status').textContent(), /HTTP 400, invalid_field/);
  await shot(page, 'field-error');
  // A bad name is shown at Name; a missing account GUID at Account GUID.
  await page.getByLabel('Name').fill('bad name/with slash');
  await page.getByRole('button', {name: 'Save'}).click();
  await page.locator('#cred-_id-err').waitFor();
  await page.getByLabel('Name').fill('ui-ibm-missing');
  await page.getByLabel('Type', {exact: true}).selectOption('ibmCloud');
  await page.getByLabel('API key').fill('k');
  await page.getByRole('button', {name: 'Save'}).click();
  await page.locator('#cred-accountGUID-err').waitFor();
  assert.equal((await d.api('GET', '/credentials/ui-bad-arn')).status, 404);
  assert.equal((await d.api('GET', '/credentials/ui-ibm-missing')).status, 404);
  await context.close();
});

test('basic, apiToken and certificate: saved, or the refusal shown at its field', BOUND, async () => {
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  const cases = [['basic', {'Username': 'svc-registry', 'Password': 'hunter2-from-the-form'}],
    ['apiToken', {'Token': 'glpat-0123456789abcdefghij'}],
    ['certificate', {'Certificate and key': '-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n'}]];
  for (const [type, fill] of cases) {
    await page.goto(d.url + '/ui/#/credentials');
    await page.getByRole('button', {name: 'Add credential'}).click();
    await page.getByLabel('Name', {exact: true}).fill('ui-' + type.toLowerCase());
    await page.getByLabel('Type', {exact: true}).selectOption(type);
    for (const [label, value] of Object.entries(fill)) await page.getByLabel(label, {exact: true}).fill(value);
    // What the server says to the same body decides what the page must show.
    const body = {_id: 'ui-probe-' + type.toLowerCase(), type, ...(fill.Username ? {accountID: fill.Username} : {}),
      secret: {plain: Object.values(fill).at(-1)}};
    const want = await d.api('POST', '/credentials', body);
    await page.getByRole('button', {name: 'Save'}).click();
    if (want.status === 201) {
      await page.getByRole('heading', {name: 'ui-' + type.toLowerCase(), exact: true}).waitFor();
      const r = await d.api('GET', '/credentials/ui-' + type.toLowerCase());
      assert.equal(r.body.type, type);
    } else {
      assert.equal(want.status, 400, JSON.stringify(want.body));
      const err = page.locator('#cred-' + want.body.field + '-err, #cred-secret-err').filter({hasText: want.body.err});
      await err.first().waitFor();
      if (type === 'basic') await shot(page, 'type-refused');
    }
  }
  await context.close();
});

test('usages are shown and a credential in use is not deleted', BOUND, async () => {
  assert.equal((await d.api('POST', '/credentials', {_id: 'ui-used', description: 'in use', ...AWS})).status, 201);
  const u1 = await d.api('POST', '/credentials/ui-used/usages', {type: 'Registry Scan', description: 'nightly scan'});
  const u2 = await d.api('POST', '/credentials/ui-used/usages', {type: 'Alert profile', description: 'pager'});
  assert.equal(u1.status, 201);
  const res = await d.api('POST', '/credentials/ui-used/resolve', {usageId: u2.body.id});
  assert.equal(res.status, 200);
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  await page.goto(d.url + '/ui/#/credentials/ui-used');
  const usages = page.locator('#usages tbody tr');
  await usages.nth(1).waitFor();
  const rows = await usages.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  const scan = rows.find((r) => r[0] === 'Registry Scan');
  const alert = rows.find((r) => r[0] === 'Alert profile');
  assert.deepEqual([scan[1], scan[2], scan[3], scan[4]], ['nightly scan', 'stale', 'never', '0']);
  assert.deepEqual([alert[2], alert[4]], ['no', '1']);
  assert.match(alert[3], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  await page.getByRole('button', {name: 'Delete'}).click();
  await page.getByRole('button', {name: 'Delete permanently'}).click();
  const refusal = page.getByRole('alert').filter({hasText: 'is in use'});
  await refusal.waitFor();
  const text = await refusal.textContent();
  assert.ok(text.includes('Registry Scan') && text.includes(u1.body.id) && text.includes(u2.body.id), text);
  await shot(page, 'delete-in-use');
  assert.equal((await d.api('GET', '/credentials/ui-used')).status, 200);
  assert.equal((await d.api('GET', '/credentials/ui-used/usages')).body.length, 2);
  // Without usages the same button deletes it.
  for (const u of [u1, u2]) assert.equal((await d.api('DELETE', '/credentials/ui-used/usages/' + u.body.id)).status, 204);
  await page.getByRole('button', {name: 'Delete', exact: true}).click();
  await page.getByRole('button', {name: 'Delete permanently'}).click();
  await page.getByText('Deleted ui-used.').waitFor();
  assert.equal((await d.api('GET', '/credentials/ui-used')).status, 404);
  await context.close();
});

test('changes made through the API appear without a reload', BOUND, async () => {
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  await page.locator('#live').filter({hasText: 'Live'}).waitFor();
  const table = page.locator('#credentials');
  await page.evaluate(() => { window.notReloaded = true; });
  assert.equal((await d.api('POST', '/credentials', {_id: 'ui-live', description: 'first', ...AWS})).status, 201);
  const row = table.locator('tr', {has: page.getByRole('link', {name: 'ui-live', exact: true})});
  await row.getByText('first').waitFor();
  assert.equal((await d.api('POST', '/credentials', {_id: 'ui-live', description: 'second', ...AWS})).status, 200);
  await row.getByText('second').waitFor();
  assert.equal((await row.locator('td').nth(4).textContent()), '2');
  assert.equal((await d.api('POST', '/credentials/ui-live/usages', {type: 'Cloud Scan', description: 'x'})).status, 201);
  await row.locator('td').nth(3).filter({hasText: /^1$/}).waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  await shot(page, 'credentials');
  await context.close();
});

test('a stored <img onerror> description renders as text and runs nothing', BOUND, async () => {
  const payloads = ['<img src=x onerror=alert(1)>', '"><svg onload=alert(2)>', '<script>alert(3)</script>'];
  for (const [i, p] of payloads.entries()) {
    assert.equal((await d.api('POST', '/credentials', {_id: 'ui-xss-' + i, description: p, ...AWS})).status, 201);
    assert.equal((await d.api('POST', '/credentials/ui-xss-' + i + '/usages', {type: p, description: p})).status, 201);
  }
  const before = dialogs.length;
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  const table = page.locator('#credentials');
  await table.getByRole('link', {name: 'ui-xss-0'}).waitFor();
  for (const [i, p] of payloads.entries()) {
    const row = table.locator('tr', {has: page.getByRole('link', {name: 'ui-xss-' + i, exact: true})});
    assert.equal(await row.locator('td').nth(2).textContent(), p);
  }
  assert.equal(await page.locator('main img, main svg, main script').count(), 0);
  await page.goto(d.url + '/ui/#/credentials/ui-xss-0');
  await page.locator('#usages tbody tr td').first().filter({hasText: payloads[0]}).waitFor();
  assert.equal(await page.locator('main img, main svg, main script').count(), 0);
  await page.waitForTimeout(300); // an onerror handler would have fired by now
  assert.equal(dialogs.length, before, dialogs.join('; '));
  assert.ok(!requests.some((u) => new URL(u).pathname.endsWith('/x')), 'the <img src=x> was fetched');
  await shot(page, 'xss-inert');
  await context.close();
});

test('a ci key sees no write buttons and no admin pages; an auditor reads; an operator writes', BOUND, async () => {
  assert.equal((await d.api('POST', '/credentials', {_id: 'ui-roles', ...AWS})).status, 201);
  const ci = await newKey('ci');
  let {context, page} = await openPage();
  await login(page, ci.id, ci.secret);
  await page.getByText('may not list or read them').waitFor();
  for (const name of ['Add credential', 'Edit', 'Delete', 'Test connection', 'Save']) {
    assert.equal(await page.getByRole('button', {name}).count(), 0, name);
  }
  for (const name of ['Audit', 'Access keys']) assert.equal(await page.getByRole('link', {name}).isVisible(), false, name);
  await shot(page, 'ci');
  await page.goto(d.url + '/ui/#/credentials/ui-roles');
  await page.getByRole('alert').filter({hasText: 'HTTP 403'}).waitFor();
  for (const name of ['Edit', 'Delete', 'Test connection']) assert.equal(await page.getByRole('button', {name}).count(), 0, name);
  await context.close();

  const auditor = await newKey('auditor');
  ({context, page} = await openPage());
  await login(page, auditor.id, auditor.secret);
  await page.locator('#credentials').getByRole('link', {name: 'ui-roles'}).waitFor();
  assert.equal(await page.getByRole('button', {name: 'Add credential'}).count(), 0);
  assert.equal(await page.getByRole('link', {name: 'Audit'}).isVisible(), true);
  assert.equal(await page.getByRole('link', {name: 'Access keys'}).isVisible(), false);
  await page.locator('#credentials').getByRole('link', {name: 'ui-roles'}).click();
  await page.getByRole('heading', {name: 'Usages'}).waitFor();
  await page.locator('.meta dd').first().waitFor();
  for (const name of ['Edit', 'Delete', 'Test connection']) assert.equal(await page.getByRole('button', {name}).count(), 0, name);
  await page.getByRole('link', {name: 'Audit'}).click();
  await page.locator('#audit tbody tr').first().waitFor();
  await context.close();

  // An operator writes but sees neither the audit trail nor the access keys.
  const operator = await newKey('operator');
  ({context, page} = await openPage());
  await login(page, operator.id, operator.secret);
  await page.getByRole('button', {name: 'Add credential'}).waitFor();
  for (const name of ['Audit', 'Access keys']) assert.equal(await page.getByRole('link', {name}).isVisible(), false, name);
  await page.goto(d.url + '/ui/#/credentials/ui-roles');
  for (const name of ['Edit', 'Test connection', 'Delete']) await page.getByRole('button', {name, exact: true}).waitFor();
  await page.goto(d.url + '/ui/#/access-keys');
  await page.getByText('Only the admin role manages access keys.').waitFor();
  assert.equal(await page.getByRole('button', {name: 'Create access key'}).count(), 0);
  // A mangled address falls back to the table.
  await page.goto(d.url + '/ui/#/credentials/%E0%A4%A');
  await page.getByText('That address names no credential.').waitFor();
  await context.close();
});

test('edit a credential and test its connection', BOUND, async () => {
  assert.equal((await d.api('POST', '/credentials', {_id: 'ui-edit', description: 'before', roleArn: 'arn:aws:iam::123456789012:role/a', durationSeconds: 1800, ...AWS})).status, 201);
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  await page.goto(d.url + '/ui/#/credentials/ui-edit');
  await page.getByRole('button', {name: 'Edit'}).click();
  const desc = page.getByLabel('Description');
  await page.getByLabel('Role ARN').filter({hasText: ''}).waitFor();
  assert.equal(await page.getByLabel('Role ARN').inputValue(), 'arn:aws:iam::123456789012:role/a');
  assert.equal(await page.getByLabel('Secret access key').inputValue(), '');
  await desc.fill('after');
  await page.getByRole('button', {name: 'Save'}).click();
  await page.getByText('Saved ui-edit.').waitFor();
  const r = await d.api('GET', '/credentials/ui-edit');
  assert.equal(r.body.description, 'after');
  assert.equal(r.body.version, 2);
  assert.equal(r.body.durationSeconds, 1800); // fields the form does not show are kept
  assert.equal(r.body.roleArn, 'arn:aws:iam::123456789012:role/a');
  // Test connection: the result {ok, message, latencyMs} or the error body, either way shown.
  await page.getByRole('button', {name: 'Test connection'}).click();
  const shown = page.locator('.result .test, .result .error');
  await shown.waitFor();
  const text = await shown.textContent();
  const api = await d.api('POST', '/credentials/ui-edit/test', {});
  if (api.status === 200) assert.match(text, /Connection (OK|failed).*Latency: \d+ ms/s);
  else assert.ok(text.includes('HTTP ' + api.status) && text.includes(api.body.code), text);
  await shot(page, 'test-connection');
  if (api.status === 404 && api.body.code === 'no_route') {
    // Not in this build yet (API.md §8): how §8's answers are shown, with the
    // answer supplied to the page for this one route.
    for (const answer of [{ok: true, message: 'GetCallerIdentity ok', latencyMs: 42, identity: 'arn:aws:sts::123456789012:assumed-role/a/credstore'},
      {ok: false, message: 'AccessDenied: <b>not authorized</b>', latencyMs: 7}]) {
      await page.route('**/api/v1/credentials/ui-edit/test', (route) => route.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(answer)}));
      await page.getByRole('button', {name: 'Test connection'}).click();
      const box = page.locator('.result .test');
      await box.filter({hasText: answer.message}).waitFor();
      const t = await box.textContent();
      assert.ok(t.startsWith(answer.ok ? 'Connection OK' : 'Connection failed'), t);
      assert.ok(t.includes('Latency: ' + answer.latencyMs + ' ms'), t);
      if (answer.identity) assert.ok(t.includes('identity: ' + answer.identity), t);
      assert.equal(await page.locator('.result b').count(), 0);
      await page.unroute('**/api/v1/credentials/ui-edit/test');
    }
  }
  await context.close();
});

test('the audit and access keys pages', BOUND, async () => {
  const {context, page} = await openPage();
  await login(page, d.admin.id, d.admin.secret);
  await page.getByRole('link', {name: 'Audit'}).click();
  const audit = page.locator('#audit tbody tr');
  await audit.first().waitFor();
  const rows = await audit.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.equal(rows[0][0], '1');
  const created = rows.find((r) => r[4] === 'create' && r[5] === 'ui-aws');
  assert.ok(created, JSON.stringify(rows.slice(0, 5)));
  assert.deepEqual([created[2], created[3], created[6]], [d.admin.id, 'admin', 'success']);
  assert.ok(rows.some((r) => r[4] === 'auth' && r[6] !== 'success'), 'the failed login is listed');
  await shot(page, 'audit');
  await page.getByRole('link', {name: 'Access keys'}).click();
  await page.getByLabel('Name').fill('from-the-console');
  await page.getByLabel('Role').selectOption('operator');
  await page.getByLabel('Scope').fill('aws-*, kube-staging');
  await page.getByRole('button', {name: 'Create access key'}).click();
  const secret = await page.locator('#new-key-secret').textContent();
  const id = await page.locator('#new-key-id').textContent();
  assert.match(secret, /^[0-9a-f]{64}$/);
  const row = page.locator('#access-keys tr', {hasText: id});
  await row.waitFor();
  assert.match(await row.textContent(), /from-the-consoleoperatoraws-\*, kube-staging/);
  await shot(page, 'access-keys');
  const listed = (await d.api('GET', '/access_keys')).body.find((k) => k.id === id);
  assert.deepEqual([listed.role, listed.scope], ['operator', ['aws-*', 'kube-staging']]);
  // The new key logs in (the secret shown was the real one); then it is deleted.
  assert.equal((await d.api('GET', '/credentials', undefined, d.basic(id, secret))).status, 200);
  await row.getByRole('button', {name: 'Delete'}).click();
  await row.getByRole('button', {name: 'Confirm delete'}).click();
  await row.waitFor({state: 'detached'});
  assert.equal((await d.api('GET', '/credentials', undefined, d.basic(id, secret))).status, 401);
  // A refusal is shown: the last admin key can't be deleted.
  const self = page.locator('#access-keys tr', {hasText: d.admin.id});
  await self.getByRole('button', {name: 'Delete'}).click();
  await self.getByRole('button', {name: 'Confirm delete'}).click();
  await page.getByRole('alert').filter({hasText: 'last_admin_key'}).waitFor();
  await context.close();
});

test('a token that stops working returns to the login form', BOUND, async () => {
  const op = await newKey('operator');
  const {context, page} = await openPage();
  await login(page, op.id, op.secret);
  await page.locator('#credentials tbody tr').first().waitFor();
  assert.equal((await d.api('DELETE', '/access_keys/' + op.id)).status, 204);
  // The next call gets 401: a search, unless the feed's next poll got there first.
  await page.getByLabel('Search').fill('anything', {timeout: 2000}).catch(() => {});
  await page.getByText('Your session has expired').waitFor();
  await page.getByLabel('Access key ID').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await context.close();
});

test('a user at work keeps the session; an idle one is returned to the login form', BOUND, async () => {
  // A daemon of its own whose tokens live 6 s.
  const short = await startDaemon(['--token-ttl', '6']);
  try {
    origins.add(short.url);
    const {context, page} = await openPage();
    await page.goto(short.url + '/ui/');
    await page.getByLabel('Access key ID').fill(short.admin.id);
    await page.getByLabel('Secret key').fill(short.admin.secret);
    await page.getByRole('button', {name: 'Log in'}).click();
    await page.locator('#credentials tbody tr').first().waitFor();
    const first = await page.evaluate(() => sessionStorage.getItem('credstore.token'));
    // Just past half the token's life (from its own iat and exp claims).
    await page.waitForFunction(() => {
      const t = sessionStorage.getItem('credstore.token');
      const c = JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return Date.now() / 1000 > c.iat + (c.exp - c.iat) / 2 + 0.3;
    }, null, {timeout: WAIT});
    await page.getByLabel('Search').fill('x'); // a call of the user's: the token is extended
    await page.waitForFunction((t) => {
      const now = sessionStorage.getItem('credstore.token');
      return now && now !== t;
    }, first, {timeout: WAIT});
    assert.equal(await page.getByText('Your session has expired').count(), 0);
    // Idle from here (the feed's polls extend nothing): back to the login form when it expires.
    await page.getByText('Your session has expired').waitFor({timeout: 9000});
    await page.getByLabel('Access key ID').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await context.close();
  } finally {
    const {rc} = await short.stop();
    assert.equal(rc, 0);
  }
});

test('readable on a phone-width window', BOUND, async () => {
  const {context, page} = await openPage({width: 390, height: 844});
  await login(page, d.admin.id, d.admin.secret);
  await page.locator('#credentials tbody tr').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, 'the page scrolls sideways by ' + overflow + 'px');
  await shot(page, 'phone-credentials');
  await page.goto(d.url + '/ui/#/credentials/ui-aws');
  await page.locator('.meta dd').first().waitFor();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await shot(page, 'phone-credential');
  await page.goto(d.url + '/ui/#/new-credential');
  await page.getByLabel('Name').waitFor();
  await shot(page, 'phone-add-credential');
  await context.close();
});

test('no request left the origin', BOUND, () => {
  assert.ok(requests.length > 50, 'requests were recorded: ' + requests.length);
  const foreign = requests.filter((u) => !origins.has(new URL(u).origin));
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(refused, []); // nothing the page needs is inline
});
