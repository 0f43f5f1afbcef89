// End-to-end test of the chat page's JSON mode in a real (headless) Chromium: the history
// shown on joining, a members panel that follows joins, renames and leaves, and a reconnect after the
// server process is restarted that shows every message sent while the page was away, once.
//
// This script runs the server itself, so that it can restart it on the same ports and log:
//   CHAT_SERVER_BIN   the chat-server binary (required)
//   CHAT_DIR          an empty directory for the config and the log (required)
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   CHAT_SCREENSHOT   where to save a desktop screenshot of the conversation (optional)
// Exit code 0 on success, 1 on failure.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { telnetClient } from './telnet.mjs';

const TIMEOUT = 15_000;
const bin = process.env.CHAT_SERVER_BIN;
const dir = process.env.CHAT_DIR;
if (!bin || !dir) {
  console.error('FAIL: set CHAT_SERVER_BIN and CHAT_DIR');
  process.exit(1);
}
const log = (msg) => console.log(`[history.spec] ${msg}`);
const failures = [];
const check = (ok, msg) => { if (!ok) failures.push(msg); log(`${ok ? 'ok  ' : 'FAIL'} ${msg}`); };

// ---- the server process ------------------------------------------------------------------------

// Starts chat-server on the given ports (0: any) with the test's log; resolves once it prints
// where its telnet and WebSocket listeners are.
function startServer(ports) {
  const config = {
    ip: '127.0.0.1', telnet_port: ports.telnet, rest_port: 0, websocket_port: ports.websocket,
    log_file: path.join(dir, 'chat.log'), admin_token: 'history-spec-token-0123456789',
  };
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const child = spawn(bin, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start: ${err}`)), TIMEOUT);
    child.stderr.on('data', (chunk) => {
      err += chunk;
      const found = {};
      for (const m of err.matchAll(/(telnet|websocket) listening on [^\s]*:(\d+)/g)) found[m[1]] = Number(m[2]);
      if (found.telnet && found.websocket && !child.found) {
        child.found = true;
        clearTimeout(timer);
        resolve({ child, telnet: found.telnet, websocket: found.websocket });
      }
    });
    child.on('exit', (code) => { if (!child.found) { clearTimeout(timer); reject(new Error(`the server exited (${code}): ${err}`)); } });
  });
}

// SIGTERM to our own child, then wait for it to exit.
function stopServer(server) {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGTERM');
  });
}

// A telnet user in #hist.
async function telnetUser(port, nick) {
  const t = telnetClient('127.0.0.1', port, log, TIMEOUT);
  await t.connected;
  await t.waitFor('with the welcome', (l) => l.startsWith('Welcome to chat server.'));
  t.send(nick);
  await t.waitFor(`accepting ${nick}`, (l) => l.startsWith(`Thanks ${nick},`));
  t.send('/join #hist');
  await t.waitFor(`about ${nick} joining`, (l) => l.endsWith(`-@${nick} just joined channel #hist`));
  return t;
}

async function say(t, nick, text) {
  t.send(text);
  await t.waitFor(`with "${text}"`, (l) => l.endsWith(`-@${nick}: ${text}`));
}

// How many times the page shows a chat line ending with `-@nick: text` (live or replayed).
const shown = (page, nick, text) => page.evaluate(([n, t]) => [...document.querySelectorAll('#log .msg--chat, #log .msg--entry')]
  .filter((el) => el.textContent.endsWith(`-@${n}: ${t}`)).length, [nick, text]);

const members = (page) => page.evaluate(() => [...document.querySelectorAll('#member-list .member')].map((li) => li.dataset.nick));

async function main() {
  let server = await startServer({ telnet: 0, websocket: 0 });
  const ports = { telnet: server.telnet, websocket: server.websocket };
  const base = `http://127.0.0.1:${ports.websocket}`;
  let browser;
  const clients = [];
  try {
    const alice = await telnetUser(ports.telnet, 'alice');
    clients.push(alice);
    await say(alice, 'alice', 'before one');
    await say(alice, 'alice', 'before two');

    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-quic'],
    });
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/WebSocket connection to .* failed|Failed to load resource/.test(m.text())) pageErrors.push(m.text());
    });
    // The page's timers run on a clock the test controls, so that the messages sent while
    // it is away are sent before it reconnects, whatever the machine's load.
    await page.clock.install();
    await page.goto(`${base}/client`);
    await page.locator('body[data-wire="json"]').waitFor({ state: 'attached' });
    check(true, 'the page speaks JSON mode (subprotocol chat.v1.json)');

    await page.fill('#nick-input', 'pageuser');
    await page.press('#nick-input', 'Enter');
    await page.locator('#input:enabled').waitFor();
    await page.fill('#input', '/join #hist');
    await page.press('#input', 'Enter');

    // History on join, set apart from the live conversation.
    const history = page.locator('#log li.msg--history');
    await history.filter({ hasText: 'Recent messages in #hist:' }).waitFor();
    check(await history.locator('.msg--entry', { hasText: '-@alice: before one' }).count() === 1, 'the history block holds "before one"');
    check(await history.locator('.msg--entry', { hasText: '-@alice: before two' }).count() === 1, 'the history block holds "before two"');
    await page.locator('#room', { hasText: '#hist' }).waitFor();

    // The members panel follows joins, renames and leaves.
    await page.locator('#member-list .member[data-nick="pageuser"]').waitFor();
    check(JSON.stringify(await members(page)) === '["alice","pageuser"]', `members on join: ${JSON.stringify(await members(page))}`);
    const bob = await telnetUser(ports.telnet, 'bob');
    await page.locator('#member-list .member[data-nick="bob"]').waitFor();
    bob.send('/nick robert');
    await page.locator('#member-list .member[data-nick="robert"]').waitFor();
    await page.locator('#log li.msg--rename', { hasText: '-@bob is now known as @robert' }).waitFor();
    check(JSON.stringify(await members(page)) === '["alice","pageuser","robert"]', `members after bob's rename: ${JSON.stringify(await members(page))}`);
    bob.send('/quit');
    await page.locator('#member-list .member[data-nick="robert"]').waitFor({ state: 'detached' });
    check(JSON.stringify(await members(page)) === '["alice","pageuser"]', 'robert left the members panel');
    bob.close();

    // The page's own user renames: the header, the panel and later re-logins follow; away shows.
    await page.fill('#input', '/nick pagefan');
    await page.press('#input', 'Enter');
    await page.locator('#me', { hasText: '@pagefan' }).waitFor();
    await page.locator('#member-list .member--me[data-nick="pagefan"]').waitFor();
    check(JSON.stringify(await members(page)) === '["alice","pagefan"]', `members after the page's rename: ${JSON.stringify(await members(page))}`);
    await page.fill('#input', '/away lunch');
    await page.press('#input', 'Enter');
    await page.locator('#member-list .member--away[data-nick="pagefan"]').waitFor();

    // A topic set now is in the header, and comes back from the log after the restart below.
    alice.send('/topic kept across restarts');
    await page.locator('#log li.msg--topic', { hasText: '-@alice set the topic of #hist: kept across restarts' }).waitFor();
    await page.locator('#topic:visible', { hasText: 'kept across restarts' }).waitFor();

    await say(alice, 'alice', 'live one');
    await page.locator('#log li.msg--chat', { hasText: '-@alice: live one' }).waitFor();
    if (process.env.CHAT_SCREENSHOT) {
      await page.screenshot({ path: process.env.CHAT_SCREENSHOT });
      log(`screenshot saved to ${process.env.CHAT_SCREENSHOT}`);
    }

    // The server goes away (a real restart of the process, same ports, same log). The page's
    // clock stands still meanwhile, so it cannot reconnect before the test lets it.
    await page.clock.pauseAt(Date.now() + 1000);
    await stopServer(server);
    alice.close();
    await page.locator('#conn[data-state="reconnecting"]').waitFor();
    server = await startServer(ports);
    const alice2 = await telnetUser(ports.telnet, 'alice');
    clients.push(alice2);
    for (const text of ['gap one', 'gap two', 'gap three']) await say(alice2, 'alice', text);
    alice2.send('/me waves');
    await alice2.waitFor('with the action', (l) => l.endsWith('-* @alice waves'));

    // Let the page's time run again: it reconnects, signs back in, rejoins with "since".
    await page.clock.resume();
    await page.locator('#conn[data-state="connected"]').waitFor();
    await page.locator('#log .msg--entry-action', { hasText: '-* @alice waves' }).waitFor();
    await page.locator('#me', { hasText: '@pagefan' }).waitFor();
    await page.locator('#topic:visible', { hasText: 'kept across restarts' }).waitFor();
    for (const text of ['before one', 'before two', 'live one', 'gap one', 'gap two', 'gap three']) {
      const n = await shown(page, 'alice', text);
      check(n === 1, `"${text}" is shown exactly once (${n})`);
    }
    await say(alice2, 'alice', 'after');
    await page.locator('#log li.msg--chat', { hasText: '-@alice: after' }).waitFor();
    check(await shown(page, 'alice', 'after') === 1, '"after" is shown once');
    check(JSON.stringify(await members(page)) === '["alice","pagefan"]', `members after the reconnect: ${JSON.stringify(await members(page))}`);
    check(pageErrors.length === 0, `no script errors or CSP violations in the page ${JSON.stringify(pageErrors)}`);
  } catch (e) {
    failures.push(e && e.stack ? e.stack : String(e));
  } finally {
    for (const c of clients) c.close();
    if (browser) await browser.close().catch(() => {});
    await stopServer(server);
  }
}

const guard = setTimeout(() => { console.log('FAIL: history.spec.mjs took longer than 80 s'); process.exit(1); }, 80_000);
await main();
clearTimeout(guard);
if (failures.length) {
  console.log(`FAIL: browser history test, ${failures.length} problem(s):\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('PASS: browser history test (history on join, members panel through joins, renames, away and leaves, topic and action across a restart, reconnect shows the gap once)');
process.exit(0);
