// The same console in Firefox (Debian's firefox-esr), driven over WebDriver
// BiDi by puppeteer-core: the page loads under its CSP, logs in and out,
// adds a credential through the form, shows a 400 at its field, follows the
// event feed, renders a stored HTML description as text, and asks no other
// origin. console.test.mjs covers the rest in chromium.
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {createRequire} from 'node:module';
import {mkdirSync} from 'node:fs';
import {join} from 'node:path';
import {startDaemon} from './daemon.mjs';

const require = createRequire(join(process.env.CS_BROWSER_MODULES || new URL('.', import.meta.url).pathname, 'x.js'));
const puppeteer = require('puppeteer-core');

const OUT = process.env.CS_BROWSER_OUT || new URL('./out/', import.meta.url).pathname;
const WAIT = 10000;
const BOUND = {timeout: 90000};
const AWS = {type: 'aws', accountID: 'AKIAIOSFODNN7EXAMPLE', secret: {plain: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'}};

let d; let browser; let page;
const requests = []; const dialogs = []; const pageErrors = [];

before(async () => {
  mkdirSync(OUT, {recursive: true});
  d = await startDaemon();
  browser = await puppeteer.launch({browser: 'firefox', executablePath: '/usr/bin/firefox-esr',
    headless: true, timeout: 60000, protocolTimeout: 30000});
  page = await browser.newPage();
  await page.setViewport({width: 1280, height: 800});
  page.setDefaultTimeout(WAIT);
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', (dlg) => { dialogs.push(dlg.message()); dlg.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(String(e.message || e)));
});

after(async () => {
  await browser?.close();
  if (d) assert.equal((await d.stop()).rc, 0);
});

const text = (sel) => page.$eval(sel, (el) => el.textContent);
/** Wait until @p sel's text matches @p re (bounded). */
const waitText = (sel, re) => page.waitForFunction((s, src) => {
  const el = document.querySelector(s);
  return el && new RegExp(src).test(el.textContent);
}, {timeout: WAIT}, sel, re.source);

test('firefox: the page under its CSP; log in', BOUND, async () => {
  const r = await page.goto(d.url + '/');
  assert.equal(new URL(page.url()).pathname, '/ui/');
  assert.equal(r.headers()['content-security-policy'], "default-src 'self'");
  await page.waitForSelector('#login-id');
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('.bar')).backgroundColor), 'rgb(15, 23, 42)');
  assert.equal(await page.$eval('label[for="login-id"]', (l) => l.textContent), 'Access key ID');
  assert.equal(await page.$eval('label[for="login-secret"]', (l) => l.textContent), 'Secret key');
  await page.type('#login-id', d.admin.id);
  await page.type('#login-secret', d.admin.secret);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#credentials');
  assert.match(await page.evaluate(() => sessionStorage.getItem('credstore.token')), /^[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.equal(await page.evaluate(() => localStorage.length + document.cookie.length), 0);
});

test('firefox: add a credential through the form; a 400 at its field', BOUND, async () => {
  await page.click('::-p-text(Add credential)');
  await page.waitForSelector('#cred-_id');
  await page.type('#cred-_id', 'ff-aws');
  await page.type('#cred-description', 'from firefox');
  await page.type('#cred-accountID', 'AKIAIOSFODNN7EXAMPLE');
  await page.type('#cred-secret', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
  await page.type('#cred-roleArn', 'not-an-arn');
  await page.click('button[type=submit]');
  await waitText('#cred-roleArn-err', /roleArn must be an IAM role ARN/);
  assert.equal(await page.$eval('#cred-roleArn', (el) => el.getAttribute('aria-invalid')), 'true');
  await page.screenshot({path: join(OUT, 'firefox-field-error.png'), fullPage: true});
  await page.$eval('#cred-roleArn', (el) => { el.value = ''; });
  await page.type('#cred-roleArn', 'arn:aws:iam::123456789012:role/scanner');
  await page.click('button[type=submit]');
  await waitText('main h1', /^ff-aws$/);
  const r = await d.api('GET', '/credentials/ff-aws');
  assert.equal(r.status, 200);
  assert.deepEqual([r.body.description, r.body.roleArn], ['from firefox', 'arn:aws:iam::123456789012:role/scanner']);
});

test('firefox: the table follows the feed; stored HTML renders as text', BOUND, async () => {
  await page.click('#nav a[href="#/credentials"]');
  await page.waitForSelector('#credentials tbody a');
  await waitText('#live', /^Live$/);
  const p = '<img src=x onerror=alert(1)>';
  assert.equal((await d.api('POST', '/credentials', {_id: 'ff-xss', description: p, ...AWS})).status, 201);
  await page.waitForFunction(() => [...document.querySelectorAll('#credentials a')].some((a) => a.textContent === 'ff-xss'), {timeout: WAIT});
  const desc = await page.evaluate(() => [...document.querySelectorAll('#credentials tr')]
    .find((tr) => tr.cells[0]?.textContent === 'ff-xss').cells[2].textContent);
  assert.equal(desc, p);
  assert.equal(await page.evaluate(() => document.querySelectorAll('main img').length), 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(dialogs, []);
  await page.screenshot({path: join(OUT, 'firefox-credentials.png'), fullPage: true});
});

test('firefox: log out forgets the token; nothing asked of another origin', BOUND, async () => {
  await page.click('#logout');
  await page.waitForSelector('#login-id');
  assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
  const origin = new URL(d.url).origin;
  assert.ok(requests.length > 15, String(requests.length));
  assert.deepEqual(requests.filter((u) => new URL(u).origin !== origin), []);
  assert.ok(!requests.some((u) => new URL(u).pathname.endsWith('/x')));
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(dialogs, []);
});
