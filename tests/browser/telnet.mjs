import net from 'node:net';

// A minimal telnet client for the browser tests.

// Connects, collects lines (CR LF stripped, telnet IAC sequences removed) and lets the test
// wait for a line matching a predicate. Lines already received count, so nothing is missed.
export function telnetClient(host, port, log, TIMEOUT) {
  const sock = net.connect({ host, port });
  const lines = [];
  const waiters = [];
  let pending = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    pending = Buffer.concat([pending, stripIac(chunk)]);
    let nl;
    while ((nl = pending.indexOf(0x0a)) >= 0) {
      const line = pending.subarray(0, nl).toString('utf8').replace(/\r$/, '');
      pending = pending.subarray(nl + 1);
      lines.push(line);
      log(`telnet <- ${JSON.stringify(line)}`);
      for (const w of [...waiters]) w.check();
    }
  });
  sock.on('error', (e) => log(`telnet error: ${e.message}`));
  const connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let from = 0; // waitFor only looks at lines after the previous match
  return {
    connected,
    lines,
    send(line) { log(`telnet -> ${JSON.stringify(line)}`); sock.write(line + '\r\n'); },
    waitFor(what, pred) {
      return new Promise((resolve, reject) => {
        const w = {
          check() {
            const i = lines.findIndex((l, k) => k >= from && pred(l));
            if (i < 0) return;
            from = i + 1;
            clearTimeout(w.timer);
            waiters.splice(waiters.indexOf(w), 1);
            resolve(lines[i]);
          },
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`telnet: no line ${what} within ${TIMEOUT} ms; got ${JSON.stringify(lines.slice(from))}`));
          }, TIMEOUT),
        };
        waiters.push(w);
        w.check();
      });
    },
    close() { sock.destroy(); },
  };
}

// Removes telnet negotiation: IAC IAC -> 255, IAC SB ... IAC SE, IAC <verb> <option>, IAC <cmd>.
function stripIac(buf) {
  const out = [];
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 255) { out.push(buf[i]); continue; }
    const cmd = buf[i + 1];
    if (cmd === 255) { out.push(255); i++; } else if (cmd === 250) {
      while (i < buf.length && !(buf[i] === 255 && buf[i + 1] === 240)) i++;
      i++;
    } else if (cmd >= 251 && cmd <= 254) i += 2; else i++;
  }
  return Buffer.from(out);
}

