// The console's browser tests: Debian's Chromium driven by playwright-core, against a broker the
// Rust test (tests/integration/browser.rs) started on 127.0.0.1 with a fresh test PKI.
//
//   node console.mjs <scenario>     with BROKER, PUBLIC, PKI, DATASET in the environment
//
// Prints one JSON object (what the scenario saw) on its last line; exits non-zero when a step
// fails, with the reason on standard error. The Rust side asserts on what is printed and on the
// broker's state afterwards (through the API), so both sides can fail.

import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const BROKER = process.env.BROKER;
const PUBLIC = process.env.PUBLIC;
const PKI = process.env.PKI;
const DATASET = process.env.DATASET;
const VERSION = process.env.VERSION;
const AXE = new URL('./node_modules/axe-core/axe.min.js', import.meta.url).pathname;

const launch = () => chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });

// A context presenting `who`'s certificate to the broker (Playwright's own TLS client). The
// broker's certificate is issued by the test CA, which this context trusts by `ignoreHTTPSErrors`;
// the `native` scenario below trusts it properly, through NSS.
async function as(browser, who, extra = {}) {
  return browser.newContext({
    ignoreHTTPSErrors: true,
    locale: 'de-DE',
    clientCertificates: [{ origin: BROKER, certPath: join(PKI, `${who}.crt`), keyPath: join(PKI, `${who}.key`) }],
    ...extra,
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function text(page) {
  return (await page.locator('main').innerText()).replace(/\s+/g, ' ');
}

// A steward registers a dataset in the form (the schema's choices), then finds it in the list.
async function register(browser) {
  const ctx = await as(browser, 'aalen-steward');
  const page = await ctx.newPage();
  await page.goto(`${BROKER}/console/datensaetze`);
  await page.getByRole('link', { name: 'Neuen Datensatz registrieren' }).click();
  await page.fill('#kennung', 'aalen-spielplaetze');
  await page.fill('#titel_de', 'Spielplätze in Aalen');
  await page.fill('#beschreibung_de', 'Lage und Ausstattung der städtischen Spielplätze.');
  await page.getByLabel('Bildung, Kultur und Sport').check();
  await page.fill('#schlagwoerter', 'Spielplatz, Freizeit');
  await page.fill('#beginn', '2026-01-01');
  await page.selectOption('#lizenz', 'http://dcat-ap.de/def/licenses/dl-by-de/2.0');
  await page.fill('#kontakt_email', 'gruenflaechen@aalen.example');
  await page.fill('#verteilung_typ_0', 'text/csv');
  await page.fill('#verteilung_url_0', 'hosted');
  await page.getByRole('button', { name: 'Registrieren' }).click();
  const saved = await page.locator('p.ok').innerText();
  check(saved.includes('ist gespeichert'), `not saved: ${await text(page)}`);
  const address = page.url();
  await page.goto(`${BROKER}/console/datensaetze?q=Spielplätze`);
  const listed = await text(page);
  await ctx.close();
  return { saved, address, listed };
}

// A steward writes a policy in the guided editor, checks it and submits it as a draft.
async function draft(browser) {
  const ctx = await as(browser, 'aalen-steward');
  const page = await ctx.newPage();
  await page.goto(`${BROKER}/console/datensaetze`);
  await page.getByRole('link', { name: /Richtlinie für .* bearbeiten/ }).first().waitFor();
  await page.goto(`${BROKER}/console/datensaetze/${DATASET}/richtlinie`);
  await page.selectOption('#zweck', 'https://w3id.org/dpv#ImprovePublicServices');
  await page.getByLabel(/Heidenheim/).check();
  await page.fill('#hoechstens', '100');
  await page.fill('#beschreibung', 'Heidenheim plant Kita-Plätze mit Aalens Zahlen.');
  await page.getByRole('button', { name: 'Richtlinie erzeugen und prüfen' }).click();
  const explained = await page.locator('#erklaerung').count();
  check(explained === 1, `no explanation after generating: ${await text(page)}`);
  const explanation = await page.locator('pre.explain').innerText();
  await page.getByRole('button', { name: 'Als Entwurf einreichen' }).click();
  const status = await page.locator('p.ok').innerText();
  const m = status.match(/Version (\d+)/);
  check(m, `no submitted version: ${await text(page)}`);
  await ctx.close();
  return { version: Number(m[1]), explanation };
}

// A page on another origin that posts the review form to the broker (what a phishing mail's link
// would open): the board member's browser presents the certificate, the broker must refuse.
async function forge(browser) {
  const target = `${BROKER}/console/freigaben/${DATASET}/${VERSION}`;
  const html = `<!DOCTYPE html><html><body><form id="f" method="post" action="${target}">
    <input name="entscheidung" value="freigeben"><input name="token" value="1.00"></form>
    <script>document.getElementById('f').submit()</script></body></html>`;
  const server = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const evil = `http://127.0.0.1:${server.address().port}/`;
  const ctx = await as(browser, 'aalen-board');
  const page = await ctx.newPage();
  const answered = page.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
  await page.goto(evil);
  const response = await answered;
  await page.waitForLoadState();
  const body = await text(page);
  await ctx.close();
  server.close();
  return { status: response.status(), body };
}

// The board member of the same city (not the author) opens the draft, sees it beside the active
// version and its simulation, and approves it.
async function approve(browser) {
  const ctx = await as(browser, 'aalen-board');
  const page = await ctx.newPage();
  await page.goto(`${BROKER}/console/freigaben`);
  await page.getByRole('link', { name: new RegExp(`Version ${VERSION} von .* prüfen`) }).click();
  check((await text(page)).includes('Was-wäre-wenn'), `no simulation on the review page: ${await text(page)}`);
  await page.getByRole('button', { name: 'Simulation berechnen' }).click();
  const before = await page.locator('#simulation-ergebnis').innerText();
  await page.fill('#notiz', 'Geprüft im Gremium am Dienstag.');
  await page.getByRole('button', { name: 'Freigeben und in Kraft setzen' }).click();
  const after = await page.locator('p.ok').innerText();
  await ctx.close();
  return { before, after };
}

// A board member of the other city opens the draft: no form, the reason instead; and a token
// lifted from the right board member's page does not work with this certificate.
async function otherCity(browser) {
  const target = `${BROKER}/console/freigaben/${DATASET}/${VERSION}`;
  const own = await as(browser, 'aalen-board');
  const ownPage = await own.newPage();
  await ownPage.goto(target);
  const token = await ownPage.locator('input[name=token]').getAttribute('value');
  await own.close();
  const ctx = await as(browser, 'heidenheim-board');
  const page = await ctx.newPage();
  await page.goto(target);
  const body = await text(page);
  const buttons = await page.getByRole('button', { name: /Freigeben/ }).count();
  const post = await ctx.request.post(target, {
    form: { entscheidung: 'freigeben', token },
    headers: { 'sec-fetch-site': 'same-origin' },
  });
  await ctx.close();
  return { body, buttons, lifted: post.status() };
}

// The board's usage page: the total of permitted requests and the chart's description.
async function usage(browser) {
  const ctx = await as(browser, 'aalen-board');
  const page = await ctx.newPage();
  await page.goto(`${BROKER}/console/nutzung`);
  const summary = await page.locator('main > p').first().innerText();
  const m = summary.match(/([\d.]+) Anfragen erlaubt/);
  check(m, `no total on the usage page: ${summary}`);
  const chart = await page.locator('#nutzung-desc').textContent();
  const partners = await page.locator('#partner-desc').textContent();
  const reasons = await page.locator('table[aria-labelledby=ablehnungen]').count() ? await page.locator('table[aria-labelledby=ablehnungen]').innerText() : '';
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: /CSV/ }).click();
  const file = await (await download).path();
  const csv = readFileSync(file);
  await ctx.close();
  return {
    permits: Number(m[1].replaceAll('.', '')),
    chart,
    partners,
    reasons,
    csvBom: csv[0] === 0xef && csv[1] === 0xbb && csv[2] === 0xbf,
    csvHeader: csv.subarray(3).toString('utf8').split('\r\n')[0],
  };
}

// axe-core on the public transparency page and on the console's pages; the CSP forbids the
// injected script, so this context bypasses it (only for the check).
async function axe(browser) {
  const out = {};
  const run = async (ctx, url) => {
    const page = await ctx.newPage();
    await page.goto(url);
    await page.addScriptTag({ path: AXE });
    const r = await page.evaluate(async () => await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }));
    out[url.replace(/^https:\/\/[^/]+/, '')] = r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
    await page.close();
  };
  const pub = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true, locale: 'de-DE' });
  await run(pub, `${PUBLIC}/transparency`);
  const lang = await (await pub.newPage()).goto(`${PUBLIC}/transparency`).then((r) => r.headers()['content-type']);
  await pub.close();
  const board = await as(browser, 'aalen-board', { bypassCSP: true });
  for (const p of ['/console/', '/console/datensaetze', '/console/freigaben', '/console/nutzung', '/console/verzeichnis', '/console/protokoll?pruefen=1']) {
    await run(board, `${BROKER}${p}`);
  }
  await board.close();
  const steward = await as(browser, 'aalen-steward', { bypassCSP: true });
  await run(steward, `${BROKER}/console/datensaetze/${DATASET}/richtlinie`);
  await run(steward, `${BROKER}/console/datensaetze/neu`);
  await run(steward, `${BROKER}/console/datensaetze/${DATASET}/bearbeiten`);
  await steward.close();
  return { contentType: lang, violations: out };
}

// Chromium's own client-certificate handling: the board member's PKCS#12 file imported into an
// NSS database (as the README tells a user to), the test CA trusted there, and the certificate
// chosen by the AutoSelectCertificateForUrls policy that scripts/prereqs.sh installs. No proxy
// presents the certificate and no certificate error is ignored.
async function native() {
  const home = mkdtempSync(join(tmpdir(), 'kdr-chromium-'));
  const db = `sql:${join(home, '.pki', 'nssdb')}`;
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    check(r.status === 0, `${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  };
  spawnSync('mkdir', ['-p', join(home, '.pki', 'nssdb')]);
  run('certutil', ['-N', '-d', db, '--empty-password']);
  run('pk12util', ['-d', db, '-i', join(PKI, 'aalen-board.p12'), '-W', process.env.P12_PASSWORD]);
  run('certutil', ['-A', '-d', db, '-n', 'kdr-test-ca', '-t', 'C,,', '-i', join(PKI, 'ca', 'ca.crt')]);
  const ctx = await chromium.launchPersistentContext(join(home, 'profile'), {
    executablePath: CHROMIUM,
    args: ['--no-sandbox'],
    env: { ...process.env, HOME: home },
    locale: 'de-DE',
  });
  const page = await ctx.newPage();
  // Without the policy Chromium would wait for someone to choose a certificate.
  page.setDefaultTimeout(20000);
  const response = await page.goto(`${BROKER}/console/`);
  const who = await page.locator('p.who').innerText();
  await ctx.close();
  return { status: response.status(), who };
}

const scenarios = { register, draft, forge, approve, otherCity, usage, axe, native };
const name = process.argv[2];
const scenario = scenarios[name];
if (!scenario) {
  console.error(`no scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
let browser;
try {
  browser = name === 'native' ? null : await launch();
  const result = await scenario(browser);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`${name}: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
}
