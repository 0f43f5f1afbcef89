// End-to-end test of the chat page at GET /client, in a real (headless) Chromium.
//
// A telnet user and a browser user meet in #test and talk both ways (public and private), then
// the browser's WebSocket is cut to check that the page reconnects, signs back in and re-joins,
// and finally the browser user types /quit.
//
// Plain node script, no test runner: exit code 0 on success, 1 on failure.
//   CHAT_WS_URL       base URL of the server's WebSocket port, e.g. http://127.0.0.1:4004 (required)
//   CHAT_TELNET_PORT  the server's telnet port on the same host (required)
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   CHAT_SCREENSHOT   where to save a desktop screenshot of the conversation (optional)
//   CHAT_SCREENSHOT_PHONE  same, at phone width (optional)
// Run from tests/browser after `npm ci`:  CHAT_WS_URL=... CHAT_TELNET_PORT=... node chat.spec.mjs

import { chromium } from 'playwright-core';
import { telnetClient as connectTelnet } from './telnet.mjs';

const TIMEOUT = 15_000; // every wait gets this long; none of them is a fixed sleep

const base = (process.env.CHAT_WS_URL || '').replace(/\/+$/, '');
const telnetPort = Number(process.env.CHAT_TELNET_PORT);
if (!/^https?:\/\/[^/]+$/.test(base) || !telnetPort) {
  console.error('FAIL: set CHAT_WS_URL (like http://127.0.0.1:4004) and CHAT_TELNET_PORT');
  process.exit(1);
}
const origin = new URL(base);

const log = (msg) => console.log(`[chat.spec] ${msg}`);
const telnetClient = (host, port) => connectTelnet(host, port, log, TIMEOUT);

// ---- the test ------------------------------------------------------------------------------------

const failures = [];
const check = (ok, msg) => { if (!ok) failures.push(msg); log(`${ok ? 'ok  ' : 'FAIL'} ${msg}`); };

async function main() {
  const telnet = telnetClient(origin.hostname, telnetPort);
  let browser;
  try {
    await telnet.connected;
    await telnet.waitFor('with the welcome', (l) => l.startsWith('Welcome to chat server.'));
    telnet.send('telnetuser');
    await telnet.waitFor('accepting telnetuser', (l) => l.startsWith('Thanks telnetuser,'));
    telnet.send('/join #test');
    await telnet.waitFor('about telnetuser joining', (l) => l.endsWith('-@telnetuser just joined channel #test'));

    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-quic'],
    });
    const context = await browser.newContext({ viewport: { width: 420, height: 800 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);

    // Everything the page fetches or opens must be on the server itself.
    const foreign = [];
    const sameHost = (u) => u.startsWith('data:') || new URL(u).host === origin.host;
    page.on('request', (r) => { if (!sameHost(r.url())) foreign.push(r.url()); });
    page.on('websocket', (ws) => { if (!sameHost(ws.url())) foreign.push(ws.url()); });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text())) pageErrors.push(m.text());
    });

    // The page's WebSocket goes through Playwright so the test can cut it later (see below).
    const sockets = [];
    await page.routeWebSocket(/\/ws$/, (ws) => { sockets.push({ page: ws, server: ws.connectToServer() }); });

    const resp = await page.goto(`${base}/client`);
    check(resp.ok(), `GET /client answers ${resp.status()}`);
    const headers = resp.headers();
    check(/script-src 'self'/.test(headers['content-security-policy'] || ''), 'GET /client sends a Content-Security-Policy with script-src \'self\'');
    check(headers['x-content-type-options'] === 'nosniff', 'GET /client sends X-Content-Type-Options: nosniff');

    const conn = page.locator('#conn');
    await page.locator('#conn[data-state="connected"]').waitFor();
    await page.locator('#log li', { hasText: 'Welcome to chat server.' }).waitFor();

    // Nickname.
    await page.locator('#nick-panel').waitFor({ state: 'visible' });
    check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'nick-input', 'the nickname box has the focus');
    await page.fill('#nick-input', 'browseruser');
    await page.press('#nick-input', 'Enter');
    await page.locator('#me', { hasText: '@browseruser' }).waitFor();
    await page.locator('#nick-panel').waitFor({ state: 'hidden' });
    await page.locator('#input:enabled').waitFor();

    // Command hints: "/he" lists /help, Tab completes it, Enter runs it.
    await page.fill('#input', '/he');
    await page.locator('#hints li', { hasText: '/help' }).waitFor();
    await page.press('#input', 'Tab');
    check(await page.inputValue('#input') === '/help', 'Tab completes /he to /help');
    await page.press('#input', 'Enter');
    await page.locator('#log li.msg--block', { hasText: 'Here is the list of all available commands' }).waitFor();

    // Join the telnet user's channel.
    await page.fill('#input', '/join #test');
    await page.press('#input', 'Enter');
    await page.locator('#room', { hasText: '#test' }).waitFor();
    await telnet.waitFor('about browseruser joining', (l) => l.endsWith('-@browseruser just joined channel #test'));

    // Browser -> telnet.
    await page.fill('#input', 'hello from the browser');
    await page.press('#input', 'Enter');
    await telnet.waitFor('ending "-@browseruser: hello from the browser"', (l) => l.endsWith('-@browseruser: hello from the browser'));
    await page.locator('#log li.msg--own', { hasText: '-@browseruser: hello from the browser' }).waitFor();
    check(await page.inputValue('#input') === '', 'the input box is cleared after sending');

    // Telnet -> browser.
    telnet.send('hello from telnet');
    const echoed = await telnet.waitFor('with its own message', (l) => l.endsWith('-@telnetuser: hello from telnet'));
    const theirs = page.locator('#log li.msg--chat', { hasText: '-@telnetuser: hello from telnet' });
    await theirs.waitFor();
    check(!(await theirs.getAttribute('class')).includes('msg--own'), 'a message from someone else is not styled as own');
    check(await theirs.textContent() === echoed, 'the rendered line holds exactly the text the server sent');

    // Private messages, both ways.
    await page.fill('#input', '/msg @telnetuser psst');
    await page.press('#input', 'Enter');
    await telnet.waitFor('with "*Private from @browseruser: psst"', (l) => l.endsWith(' - *Private from @browseruser: psst'));
    await page.locator('#log li.msg--private', { hasText: '*Private to @telnetuser: psst' }).waitFor();
    telnet.send('/msg @browseruser see you at 5?');
    await page.locator('#log li.msg--private', { hasText: '*Private from @telnetuser: see you at 5?' }).waitFor();

    // Actions and topic changes render as such; the topic shows in the header.
    telnet.send('/me waves at the browser');
    await page.locator('#log li.msg--action', { hasText: '-* @telnetuser waves at the browser' }).waitFor();
    telnet.send('/topic Testing the new commands');
    await page.locator('#log li.msg--topic', { hasText: '-@telnetuser set the topic of #test: Testing the new commands' }).waitFor();
    await page.locator('#topic', { hasText: 'Testing the new commands' }).waitFor();
    // The hints know the new commands.
    await page.fill('#input', '/ni');
    await page.locator('#hints li', { hasText: '/nick newnickname' }).waitFor();
    await page.fill('#input', '');

    telnet.send('the build is green again');
    await page.locator('#log li.msg--chat', { hasText: '-@telnetuser: the build is green again' }).waitFor();

    check(await conn.getAttribute('data-state') === 'connected', 'the connection state is "connected"');
    check((await conn.textContent()).trim() === 'Connected', 'the connection state reads "Connected"');
    // The view follows the conversation.
    check(await page.evaluate(() => { const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 48; }),
      'the conversation is scrolled to the newest message');

    if (process.env.CHAT_SCREENSHOT_PHONE) await page.screenshot({ path: process.env.CHAT_SCREENSHOT_PHONE });
    if (process.env.CHAT_SCREENSHOT) {
      await page.setViewportSize({ width: 1000, height: 700 });
      await page.locator('#log li').last().scrollIntoViewIfNeeded();
      await page.screenshot({ path: process.env.CHAT_SCREENSHOT });
      log(`screenshot saved to ${process.env.CHAT_SCREENSHOT}`);
    }

    // Cut the page's WebSocket as a network failure would: the page must show that it is
    // reconnecting, come back, send its nickname again and re-join #test by itself.
    check(sockets.length === 1, `the page opened one WebSocket (${sockets.length})`);
    await sockets[0].server.close({ code: 1000, reason: 'test cuts the connection' });
    await sockets[0].page.close({ code: 4000, reason: 'test cuts the connection' });
    await page.locator('#conn[data-state="reconnecting"], #conn[data-state="connecting"]').waitFor();
    await telnet.waitFor('about browseruser leaving', (l) => l.endsWith('-@browseruser left channel #test'));
    await telnet.waitFor('about browseruser re-joining', (l) => l.endsWith('-@browseruser just joined channel #test'));
    await page.locator('#conn[data-state="connected"]').waitFor();
    await page.locator('#room', { hasText: '#test' }).waitFor();
    check(await page.locator('#nick-panel').isHidden(), 'no nickname prompt after an automatic re-login');
    await page.locator('#input:enabled').waitFor();
    await page.fill('#input', 'back again');
    await page.press('#input', 'Enter');
    await telnet.waitFor('ending "-@browseruser: back again"', (l) => l.endsWith('-@browseruser: back again'));

    // /quit: the server says good bye, the page shows it is disconnected and does not reconnect
    // (a reconnect would show "reconnecting" first, so waiting for "disconnected" is enough).
    await page.fill('#input', '/quit');
    await page.press('#input', 'Enter');
    await page.locator('#log li', { hasText: 'Good Bye browseruser, come back again.' }).waitFor();
    await page.locator('#conn[data-state="disconnected"]').waitFor();
    await telnet.waitFor('about browseruser leaving after /quit', (l) => l.endsWith('-@browseruser left channel #test'));
    check(sockets.length === 2, `the page opened exactly one more WebSocket after the cut (${sockets.length})`);

    check(foreign.length === 0, `the page made no request to another host ${JSON.stringify(foreign)}`);
    check(pageErrors.length === 0, `no script errors or CSP violations in the page ${JSON.stringify(pageErrors)}`);
  } catch (e) {
    failures.push(e && e.stack ? e.stack : String(e));
  } finally {
    telnet.close();
    if (browser) await browser.close().catch(() => {});
  }
}

const guard = setTimeout(() => { console.log('FAIL: chat.spec.mjs took longer than 80 s'); process.exit(1); }, 80_000);
await main();
clearTimeout(guard);
if (failures.length) {
  console.log(`FAIL: browser chat test, ${failures.length} problem(s):\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('PASS: browser chat test (nickname, join, public and private messages both ways, actions, topics, reconnect, /quit)');
process.exit(0);
