// chat-server web client: one WebSocket to /ws on the page's own host in JSON mode (subprotocol
// chat.v1.json): every server message is one JSON object with a "type", its fields and the
// "line" a text client would get; every frame we send is one input line. Against a server
// without JSON mode the page falls back to plain text. Text from the network is only ever put
// on the page with textContent.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'), connSr: $('conn-sr'), retry: $('retry'), me: $('me'), room: $('room'),
    log: $('log'), jump: $('jump'),
    nickPanel: $('nick-panel'), nickForm: $('nick-form'), nickInput: $('nick-input'), nickError: $('nick-error'),
    sendForm: $('send-form'), input: $('input'), send: $('send'), hints: $('hints'),
    topic: $('topic'), members: $('members'), memberList: $('member-list'), memberCount: $('member-count'),
  };
  const PROTOCOL = 'chat.v1.json';
  const MAX_SEEN = 5000;             // sequence numbers remembered for de-duplication

  // The commands the server knows (same order as its /help), with what Tab completes them to.
  const COMMANDS = [
    { usage: '/help', fill: '/help', desc: 'Show all commands' },
    { usage: '/list', fill: '/list', desc: 'List the users in this channel' },
    { usage: '/join #channel', fill: '/join #', desc: 'Join (or create) a channel' },
    { usage: '/msg @nickname message', fill: '/msg @', desc: 'Send a private message' },
    { usage: '/ignore @nickname', fill: '/ignore @', desc: 'Stop private messages from a user' },
    { usage: '/quit', fill: '/quit', desc: 'Leave the chat server' },
    { usage: '/nick newnickname', fill: '/nick ', desc: 'Change your nickname' },
    { usage: '/me action', fill: '/me ', desc: 'Show an action, e.g. /me waves' },
    { usage: '/topic [text]', fill: '/topic', desc: 'Show or set the channel topic' },
    { usage: '/away [message]', fill: '/away', desc: 'Mark yourself as away' },
    { usage: '/back', fill: '/back', desc: 'You are back' },
    { usage: '/whois @nickname', fill: '/whois @', desc: 'Who is this user?' },
    { usage: '/channels', fill: '/channels', desc: 'List all channels' },
    { usage: '/unignore @nickname', fill: '/unignore @', desc: 'Stop ignoring a user' },
    { usage: '/motd', fill: '/motd', desc: 'Show the message of the day' },
    { usage: '/history [N]', fill: '/history', desc: 'Show the last N messages of this channel' },
  ];
  const MAX_LINES = 1000;            // keep the page light in long sessions
  const BACKOFF_MIN = 500;           // ms, first reconnect delay
  const BACKOFF_MAX = 10000;         // ms, delay cap

  // Patterns for the server's lines (see src/chat/strings.rs). TIME is the "3:04PM" kitchen time.
  // History lines not from today carry the date first: "Jan 2 3:04PM".
  const TIME = '((?:[A-Z][a-z]{2} \\d{1,2} )?\\d{1,2}:\\d{2}[AP]M)';
  const RE = {
    chat: new RegExp(`^${TIME}-@([^\\s:]+): ([\\s\\S]*)$`),
    priv: new RegExp(`^${TIME} - \\*Private (from|to) @([^\\s:]+): ([\\s\\S]*)$`),
    stamped: new RegExp(`^${TIME}-`),
    joined: new RegExp(`^${TIME}-@(\\S+) just joined channel (#\\S+)$`),
    left: new RegExp(`^${TIME}-@(\\S+) left channel (#\\S+)$`),
    action: new RegExp(`^${TIME}-\\* @(\\S+) ([\\s\\S]*)$`),
    topicSet: new RegExp(`^${TIME}-@(\\S+) set the topic of (#\\S+): ([\\s\\S]*)$`),
    renamed: new RegExp(`^${TIME}-@(\\S+) is now known as @(\\S+)$`),
    topicIs: /^Topic of (#\S+): ([\s\S]*)$/,
    noTopic: /^(#\S+) has no topic\.$/,
    knownAs: /^You are now known as @(\S+)$/,
    thanks: /^Thanks (\S+), now please type/,
    already: /^You are already in channel (#\S+)/,
    error: /^(Unknown command|Could not find|Invalid|You need to|You are not|You are already|You can not|User @|Your message|The server could not|Binary|Please enter a nickname first|Another user|Topics are limited)|is (already|not) ignored\.$/,
  };

  const s = {
    ws: null,            // the current WebSocket (events from older ones are ignored)
    nick: null,          // nickname the server accepted on this connection
    channel: null,       // channel we are in on this connection
    topic: null,         // the topic of that channel, when the server told us
    wantNick: null,      // nickname to (re)send after the next welcome
    wantChannel: null,   // channel to re-join after a reconnect
    welcomed: false,     // server has sent its welcome and waits for a nickname
    nickSent: false,     // a nickname is on its way and unanswered
    autoLogin: false,    // the nickname in flight was sent by us after a reconnect
    needNick: true,      // the user has to type a nickname (the form is shown)
    stop: false,         // do not reconnect (after /quit or a nickname timeout)
    attempt: 0, timer: 0, tick: 0, retryAt: 0,
    json: false,         // this connection speaks JSON mode
    lastSeq: 0,          // highest log sequence number shown: rejoin "since" it after a drop
    seen: new Set(),     // sequence numbers shown, so a replay never shows a message twice
    members: [],         // [{nick, away}] of our channel
  };

  // ---- connection --------------------------------------------------------------------------

  function connect() {
    clearTimeout(s.timer); clearInterval(s.tick);
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    const ws = new WebSocket(url, PROTOCOL);
    s.ws = ws; s.nick = null; s.channel = null; s.welcomed = false; s.nickSent = false; s.stop = false;
    setConn('connecting', s.attempt ? 'Reconnecting…' : 'Connecting…');
    let opened = false;
    ws.onopen = () => {
      if (ws !== s.ws) return;
      opened = true; s.attempt = 0;
      s.json = ws.protocol === PROTOCOL;
      document.body.dataset.wire = s.json ? 'json' : 'text';
      setConn('connected', 'Connected');
    };
    ws.onmessage = (ev) => { if (ws === s.ws && typeof ev.data === 'string') frame(ev.data); };
    ws.onclose = () => { if (ws === s.ws) closed(opened && !s.stop); };
  }

  function closed(lost) {
    if (lost) addLine('Connection lost.', 'local');
    s.ws = null; s.nick = null; s.channel = null; s.welcomed = false;
    renderSession();
    if (s.stop) { setConn('disconnected', 'Disconnected'); ui.retry.textContent = 'Connect'; ui.retry.hidden = false; return; }
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... 10 s, each ±25 %.
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** s.attempt++);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    s.retryAt = Date.now() + delay;
    s.timer = setTimeout(connect, delay);
    s.tick = setInterval(showCountdown, 250);
    showCountdown();
    ui.retry.textContent = 'Retry now'; ui.retry.hidden = false;
  }

  function showCountdown() {
    const left = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
    setConn('reconnecting', `Reconnecting in ${left}s`);
  }

  function setConn(state, text) {
    // Screen readers hear state changes only, not every tick of the countdown.
    if (ui.conn.dataset.state !== state) ui.connSr.textContent = text.replace(/ in \d+s$/, '…');
    ui.conn.dataset.state = state;
    if (ui.conn.textContent !== text) ui.conn.textContent = text;
    if (state !== 'reconnecting' && state !== 'disconnected') ui.retry.hidden = true;
    updateControls();
  }

  function sendLine(line) {
    if (!s.ws || s.ws.readyState !== WebSocket.OPEN) return false;
    s.ws.send(line);
    return true;
  }

  // ---- what the server says ----------------------------------------------------------------

  function receive(text) {
    if (text.startsWith('Welcome to chat server.')) {
      s.welcomed = true;
      if (s.wantNick && !s.needNick) return loginAs(s.wantNick, true); // back after a drop
      addLine(text, 'notice');
      if (s.wantNick) loginAs(s.wantNick, false);
      return renderSession();
    }
    const thanks = RE.thanks.exec(text);
    if (thanks && !s.nick) {
      s.nick = s.wantNick = thanks[1]; s.nickSent = false; s.needNick = false;
      ui.nickError.textContent = '';
      addLine(s.autoLogin ? `Reconnected as @${s.nick}.` : text, s.autoLogin ? 'local' : 'notice');
      // Back after a drop: re-join, asking for everything said since the last message shown.
      if (s.autoLogin && s.wantChannel) sendLine('/join ' + s.wantChannel + (s.lastSeq ? ' since ' + s.lastSeq : ''));
      else s.wantChannel = null;
      s.autoLogin = false;
      renderSession();
      ui.input.focus();
      return;
    }
    if (!s.nick && s.nickSent && (text.startsWith('Another user') || text.startsWith('Invalid nickname'))) {
      // Refused: show why in the form and ask again (also when our automatic re-login failed).
      s.nickSent = false; s.autoLogin = false; s.needNick = true;
      ui.nickError.textContent = text;
      addLine(text, 'error');
      renderSession();
      ui.nickInput.select(); ui.nickInput.focus();
      return;
    }
    if (text.startsWith('You are now marked as away')) setAway(s.nick, true);
    if (text.startsWith('You are no longer marked as away')) setAway(s.nick, false);
    if (text.startsWith('You did not enter a nickname in time')) s.stop = true;
    if (text.startsWith('Good Bye')) { s.stop = s.needNick = true; s.wantNick = s.wantChannel = null; }
    render(text);
  }

  // Works out what kind of line this is, tracks our own channel, and adds it to the log.
  function render(text) {
    let m;
    if (RE.action.test(text)) return showAction(text, 'action');
    if ((m = RE.topicSet.exec(text))) {
      setTopic(m[3], m[4]);
      return addLine(text, 'event topic', [['time', m[1]], ['sep', '-'], ['text', text.slice(m[1].length + 1)]]);
    }
    if ((m = RE.renamed.exec(text))) {
      renamed(m[2], m[3]);
      return addLine(text, 'event rename', [['time', m[1]], ['sep', '-'], ['text', text.slice(m[1].length + 1)]]);
    }
    if ((m = RE.knownAs.exec(text))) { s.nick = s.wantNick = m[1]; renderSession(); }
    if ((m = RE.topicIs.exec(text))) setTopic(m[1], m[2]);
    if ((m = RE.noTopic.exec(text))) setTopic(m[1], null);
    if ((m = RE.chat.exec(text))) {
      const own = same(m[2], s.nick);
      return addLine(text, own ? 'chat own' : 'chat', [
        ['time', m[1]], ['sep', '-'], ['nick', '@' + m[2]], ['sep', ': '], ['text', m[3]]]);
    }
    if ((m = RE.priv.exec(text))) {
      return addLine(text, 'chat private ' + (m[2] === 'to' ? 'own' : 'incoming'), [
        ['time', m[1]], ['sep', ' - *'], ['nick', `Private ${m[2]} @${m[3]}`], ['sep', ': '], ['text', m[4]]]);
    }
    if ((m = RE.joined.exec(text)) || (m = RE.left.exec(text))) {
      const isJoin = text.includes(' just joined channel ');
      if (same(m[2], s.nick)) {
        const was = s.channel;
        s.channel = isJoin ? m[3] : (same(s.channel, m[3]) ? null : s.channel);
        if (!same(was, s.channel)) s.topic = null;
        s.wantChannel = s.channel;
        renderSession();
      }
      return addLine(text, 'event ' + (isJoin ? 'join' : 'leave'), [['time', m[1]], ['sep', '-'], ['text', text.slice(m[1].length + 1)]]);
    }
    if ((m = RE.already.exec(text))) { s.channel = s.wantChannel = m[1]; renderSession(); }
    if (text.startsWith('Public Server Announcement: ')) {
      return addLine(text, 'announce', [['sep', 'Public Server '], ['label', 'Announcement'], ['sep', ': '], ['text', text.slice(28)]]);
    }
    if (text.startsWith('The server is shutting down')) return addLine(text, 'announce');
    if (text.includes('\n')) return addBlock(text);
    if (RE.stamped.test(text)) return addLine(text, 'event');
    addLine(text, RE.error.test(text) ? 'error' : 'notice');
  }

  const same = (a, b) => !!a && !!b && a.toLowerCase() === b.toLowerCase();

  // ---- JSON mode -----------------------------------------------------------------------------

  function frame(data) {
    if (!s.json) return receive(data);
    let ev;
    try { ev = JSON.parse(data); } catch (e) { return receive(data); }
    if (!ev || typeof ev.line !== 'string') return;
    event(ev);
  }

  // A message with a log sequence number is shown once, however often it arrives.
  const seqKey = (ev) => (ev.type === 'private' ? `${ev.seq}${ev.line}` : ev.seq);
  function firstTime(ev) {
    if (typeof ev.seq !== 'number') return true;
    const key = seqKey(ev);
    if (s.seen.has(key)) return false;
    s.seen.add(key);
    if (s.seen.size > MAX_SEEN) s.seen.delete(s.seen.values().next().value);
    if (ev.seq > s.lastSeq) s.lastSeq = ev.seq;
    return true;
  }

  function event(ev) {
    if (!firstTime(ev)) return;
    switch (ev.type) {
      case 'join':
        if (same(ev.nick, s.nick)) { s.channel = ev.channel; }
        else if (same(ev.channel, s.channel)) addMember({ nick: ev.nick, away: false });
        break;
      case 'leave':
        if (same(ev.channel, s.channel)) removeMember(ev.nick);
        break;
      case 'nick':
        renamed(ev.old, ev.new);
        break;
      case 'topic':
        setTopic(ev.channel, ev.topic);
        break;
      case 'members':
        if (!same(s.channel, ev.channel)) s.topic = null;
        s.channel = s.wantChannel = ev.channel;
        setMembers(ev.members || []);
        renderSession();
        break;
      case 'history':
        return showHistory(ev);
      case 'action':
        return showAction(ev.line, 'action');
      case 'chat': case 'private': case 'announcement':
        break;
      default: // notices: greetings, answers, errors
        return receive(ev.line);
    }
    render(ev.line);
  }

  function showAction(line, kinds) {
    const m = RE.action.exec(line);
    if (!m) return addLine(line, kinds);
    return addLine(line, kinds + (same(m[2], s.nick) ? ' own' : ''), [
      ['time', m[1]], ['sep', '-* '], ['nick', '@' + m[2]], ['sep', ' '], ['text', m[3]]]);
  }

  // A replay block, set apart from the live conversation: the entries not shown before.
  function showHistory(ev) {
    const entries = (ev.entries || []).filter(firstTime);
    if (!entries.length && ev.complete !== false) return;
    const [head] = ev.line.split('\n');
    const li = document.createElement('li');
    li.className = 'msg msg--history';
    const h = document.createElement('div');
    h.className = 'msg__head';
    h.textContent = head;
    li.appendChild(h);
    if (ev.complete === false) {
      const note = document.createElement('div');
      note.className = 'msg__note';
      note.textContent = 'Older messages are no longer available; some may be missing.';
      li.appendChild(note);
    }
    const list = document.createElement('ol');
    list.className = 'msg__entries';
    for (const e of entries) {
      const item = document.createElement('li');
      item.className = 'msg--entry msg--entry-' + e.type;
      item.textContent = e.line;
      list.appendChild(item);
      if (e.type === 'topic' && same(e.channel, s.channel)) setTopic(e.channel, e.topic);
    }
    li.appendChild(list);
    append(li);
  }

  // ---- members and topic ---------------------------------------------------------------------

  function setMembers(list) {
    s.members = list.map((m) => ({ nick: String(m.nick), away: !!m.away }));
    renderMembers();
  }
  function addMember(m) {
    if (!s.members.some((x) => same(x.nick, m.nick))) s.members.push(m);
    renderMembers();
  }
  function removeMember(nick) {
    s.members = s.members.filter((m) => !same(m.nick, nick));
    renderMembers();
  }
  // Someone (perhaps we) changed nickname: the members panel, and our own name, follow.
  function renamed(old, nick) {
    for (const m of s.members) if (same(m.nick, old)) m.nick = nick;
    if (same(old, s.nick)) { s.nick = s.wantNick = nick; renderSession(); }
    renderMembers();
  }
  function setAway(nick, away) {
    for (const m of s.members) if (same(m.nick, nick)) m.away = away;
    renderMembers();
  }

  function renderMembers() {
    ui.members.hidden = !(s.nick && s.channel);
    ui.memberCount.textContent = s.members.length ? `(${s.members.length})` : '';
    ui.memberList.replaceChildren(...s.members.map((m) => {
      const li = document.createElement('li');
      li.className = 'member' + (m.away ? ' member--away' : '') + (same(m.nick, s.nick) ? ' member--me' : '');
      li.dataset.nick = m.nick;
      li.textContent = '@' + m.nick;
      if (m.away) {
        const tag = document.createElement('span');
        tag.className = 'member__away';
        tag.textContent = ' (away)';
        li.appendChild(tag);
      }
      return li;
    }));
  }

  // The topic of our channel (null: none); topics of other channels are not ours to show.
  function setTopic(channel, topic) {
    if (!same(channel, s.channel)) return;
    s.topic = topic || null;
    renderSession();
  }

  // ---- the conversation --------------------------------------------------------------------

  // Adds one <li>. With parts, each part is a <span class="msg__KIND">; the spans together hold
  // exactly the server's line, so copying or reading textContent gives the original text.
  function addLine(text, kinds, parts) {
    const li = document.createElement('li');
    li.className = 'msg ' + kinds.split(' ').map((k) => 'msg--' + k).join(' ');
    if (!parts) li.textContent = text;
    for (const [kind, value] of parts || []) {
      const span = document.createElement('span');
      span.className = 'msg__' + kind;
      span.textContent = value;
      li.appendChild(span);
    }
    append(li);
  }

  // Multi-line replies (/help, /list): a heading and one row per line; "syntax<TAB>text" rows
  // become two columns, and commands are clickable to put them in the input box.
  function addBlock(text) {
    const [head, ...rows] = text.split('\n');
    const li = document.createElement('li');
    li.className = 'msg msg--block';
    const h = document.createElement('div');
    h.className = 'msg__head';
    h.textContent = head;
    li.appendChild(h);
    for (const row of rows) {
      const div = document.createElement('div');
      div.className = 'msg__row';
      const tab = row.indexOf('\t');
      const code = document.createElement('code');
      code.textContent = tab < 0 ? row : row.slice(0, tab);
      div.appendChild(code);
      if (tab >= 0) {
        const desc = document.createElement('span');
        desc.textContent = row.slice(tab);
        div.appendChild(desc);
        const cmd = COMMANDS.find((c) => c.usage === row.slice(0, tab));
        if (cmd) { code.classList.add('clickable'); code.title = 'Use ' + cmd.usage; code.addEventListener('click', () => complete(cmd)); }
      }
      li.appendChild(div);
    }
    append(li);
  }

  // Appends to the log, keeping the view pinned to the newest line unless the user scrolled up.
  function append(li) {
    const log = ui.log;
    const pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    log.appendChild(li);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (pinned) log.scrollTop = log.scrollHeight;
    else ui.jump.hidden = false;
  }

  // Whether the view follows the newest line: the user has not scrolled up. When the log's box
  // changes size (the topic bar or the members panel appears), a view that followed still does.
  let following = true;
  ui.log.addEventListener('scroll', () => {
    following = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
    if (following) ui.jump.hidden = true;
  });
  new ResizeObserver(() => { if (following) ui.log.scrollTop = ui.log.scrollHeight; }).observe(ui.log);
  ui.jump.addEventListener('click', () => {
    ui.log.scrollTop = ui.log.scrollHeight; ui.jump.hidden = true; ui.input.focus();
  });

  // ---- header, nickname form and input state -----------------------------------------------

  function renderSession() {
    ui.me.hidden = !s.nick; ui.me.textContent = s.nick ? '@' + s.nick : '';
    ui.room.hidden = !(s.nick && s.channel); ui.room.textContent = s.channel || '';
    ui.room.title = s.topic ? `Topic: ${s.topic}` : 'Current channel';
    ui.topic.hidden = !(s.nick && s.channel && s.topic); ui.topic.textContent = s.topic || '';
    ui.members.hidden = !(s.nick && s.channel);
    document.title = s.nick && s.channel ? `${s.channel} · chat-server` : 'chat-server';
    // The nickname form shows until a nickname is accepted (not while we log back in by ourselves).
    const showForm = s.needNick && !s.nick;
    if (ui.nickPanel.hidden === showForm) {
      ui.nickPanel.hidden = !showForm;
      if (showForm) ui.nickInput.focus();
    }
    updateControls();
  }

  function updateControls() {
    const open = !!s.ws && s.ws.readyState === WebSocket.OPEN;
    ui.input.disabled = ui.send.disabled = !(open && s.nick);
    ui.nickInput.disabled = ui.nickForm.querySelector('button').disabled = s.nickSent;
  }

  function loginAs(nick, auto) {
    s.autoLogin = auto;
    s.nickSent = sendLine(nick);
    if (auto && s.nickSent) addLine(`Signing back in as @${nick}…`, 'local');
  }

  ui.nickForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const nick = ui.nickInput.value.trim();
    if (!nick) { ui.nickError.textContent = 'Please enter a nickname.'; return ui.nickInput.focus(); }
    ui.nickError.textContent = '';
    s.wantNick = nick; s.wantChannel = null;
    if (s.welcomed) loginAs(nick, false);
    else if (!s.ws) { s.attempt = 0; connect(); }   // disconnected: connect, send it on welcome
    updateControls();
  });

  ui.retry.addEventListener('click', () => {
    s.attempt = 0; connect();
    if (!ui.nickPanel.hidden) ui.nickInput.focus();
  });
  window.addEventListener('online', () => { if (!s.ws && !s.stop) connect(); });

  // ---- composing -----------------------------------------------------------------------------

  ui.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    // Enter on a half-typed command ("/jo") completes it instead of sending an unknown command.
    if (completing() && matches[active].fill !== ui.input.value) return complete(matches[active]);
    const line = ui.input.value;
    if (!line.trim()) return;
    if (!sendLine(line)) return addLine('Not connected, your message was not sent.', 'error local');
    if (/^\/quit(\s|$)/.test(line)) s.stop = true;
    ui.input.value = '';
    showHints();
  });

  // Command hints. While the input is "/wo" (no space yet) the commands starting with it are
  // listed and Tab, Enter or a click completes one; after the space the syntax stays as a reminder.
  let matches = [];
  let active = 0;
  const completing = () => !ui.hints.hidden && matches.length > 0 && !ui.input.value.includes(' ');

  function showHints() {
    const v = ui.input.value;
    const word = v.split(' ')[0];
    matches = !v.startsWith('/') ? []
      : v.includes(' ') ? COMMANDS.filter((c) => c.usage.split(' ')[0] === word)
        : COMMANDS.filter((c) => c.usage.startsWith(word));
    active = Math.min(active, Math.max(0, matches.length - 1));
    ui.hints.replaceChildren(...matches.map((c, i) => {
      const li = document.createElement('li');
      li.id = 'hint-' + i;
      li.className = 'hint' + (i === active ? ' hint--active' : '');
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(i === active));
      const code = document.createElement('code');
      code.textContent = c.usage;
      const desc = document.createElement('span');
      desc.textContent = c.desc;
      li.append(code, desc);
      li.addEventListener('mousedown', (e) => { e.preventDefault(); complete(c); });
      return li;
    }));
    setHintsOpen(matches.length > 0 && document.activeElement === ui.input);
  }

  function setHintsOpen(open) {
    ui.hints.hidden = !open;
    ui.input.setAttribute('aria-expanded', String(open));
    if (open) ui.input.setAttribute('aria-activedescendant', 'hint-' + active);
    else ui.input.removeAttribute('aria-activedescendant');
  }

  function complete(cmd) {
    ui.input.value = cmd.fill;
    ui.input.focus();
    ui.input.setSelectionRange(cmd.fill.length, cmd.fill.length);
    showHints();
  }

  ui.input.addEventListener('input', () => { active = 0; showHints(); });
  ui.input.addEventListener('focus', showHints);
  ui.input.addEventListener('blur', () => setHintsOpen(false));
  ui.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') return setHintsOpen(false);
    if (!completing()) return;
    if (ev.key === 'Tab' && !ev.shiftKey) { ev.preventDefault(); complete(matches[active]); }
    else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      active = (active + (ev.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      showHints();
    }
  });

  // ---- start ---------------------------------------------------------------------------------
  renderSession();
  ui.nickInput.focus();
  connect();
})();
