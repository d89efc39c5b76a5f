/*
 * Customer chat client for /chat/ and /chat/embed/. Protocol: docs/websocket.md.
 *
 * - Every piece of customer, bot or operator text goes into the page with textContent, never innerHTML.
 * - Messages are keyed by seq, so history, live events and replays after a reconnect never duplicate.
 * - A message is "pending" until the server echoes it (matched by client_msg_id). Pending messages are
 *   kept in localStorage and resent with the same client_msg_id after a reconnect or a reload; the server
 *   stores a resend only once.
 * - Reconnects back off exponentially (1 s, 2 s, 4 s ... 30 s, with jitter) and resume with
 *   hello {token, after_seq: highest seq seen}.
 */
(function () {
  "use strict";

  var root = document.getElementById("chat-app");
  if (!root) {
    return;
  }

  var S = JSON.parse(document.getElementById("chat-strings").textContent);
  var STORAGE_KEY = "karakuri_cs.chat.v1";
  var MAX_CHARS = parseInt(root.getAttribute("data-max-chars"), 10) || 1000;
  var IS_EMBED = root.getAttribute("data-embed") === "true";
  var BACKOFF_BASE_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var PING_EVERY_MS = 25000;
  var PONG_TIMEOUT_MS = 10000;
  var ACK_TIMEOUT_MS = 15000;
  var CONNECT_TIMEOUT_MS = 15000;
  var SVG_NS = "http://www.w3.org/2000/svg";

  function fmt(template, vars) {
    return String(template).replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : match;
    });
  }

  function q(testid) {
    return root.querySelector('[data-testid="' + testid + '"]');
  }

  var els = {
    scroll: document.getElementById("chat-scroll"),
    list: q("message-list"),
    typing: q("typing"),
    input: q("chat-input"),
    send: q("chat-send"),
    form: q("chat-form"),
    error: q("chat-error"),
    errorText: root.querySelector(".chat-error__text"),
    errorDismiss: q("chat-error-dismiss"),
    conn: q("connection-status"),
    connText: root.querySelector(".connection-status__text"),
    status: q("conversation-status"),
    operator: q("operator-request"),
    closed: q("chat-closed"),
    newConversation: q("new-conversation"),
    close: q("chat-close"),
    count: q("char-count"),
  };

  // ---------------------------------------------------------------- storage

  // localStorage can be missing or throw (private mode, third-party iframe with storage blocked): fall back
  // to memory, which still survives reconnects, just not reloads.
  var memoryStore = {};
  function storageGet() {
    try {
      var raw = window.localStorage.getItem(STORAGE_KEY);
      return raw ? JSON.parse(raw) : {};
    } catch (e) {
      return memoryStore;
    }
  }
  function storageSet(value) {
    memoryStore = value;
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(value));
    } catch (e) {
      /* memory only */
    }
  }

  var saved = storageGet();

  // ---------------------------------------------------------------- state

  var state = {
    token: typeof saved.token === "string" ? saved.token : null,
    conversationId: typeof saved.conversation_id === "string" ? saved.conversation_id : null,
    status: "bot",
    maxSeq: 0,
    // client_msg_id -> {id, text, sentAt}; insertion order is send order.
    pending: new Map(),
    ws: null,
    ready: false,
    attempt: 0,
    reconnectTimer: null,
    countdownTimer: null,
    pingTimer: null,
    pongTimer: null,
    ackTimer: null,
    connectTimer: null,
    resetOnClose: false,
    // Counts sockets, so a pending message knows whether it was already sent on the current one.
    connection: 0,
  };

  if (Array.isArray(saved.pending)) {
    saved.pending.forEach(function (p) {
      if (p && typeof p.id === "string" && typeof p.text === "string") {
        state.pending.set(p.id, { id: p.id, text: p.text, sentAt: 0 });
      }
    });
  }

  function persist() {
    var pending = [];
    state.pending.forEach(function (p) {
      pending.push({ id: p.id, text: p.text });
    });
    storageSet({ token: state.token, conversation_id: state.conversationId, pending: pending });
  }

  // seq -> <li>; client_msg_id -> <li> for customer messages not yet echoed.
  var bySeq = new Map();
  var pendingEls = new Map();
  // in_reply_to_seq -> {nextIndex, text, broken, el}
  var streams = new Map();
  // in_reply_to_seq values whose final reply has arrived (late tokens for them are ignored).
  var answered = new Set();

  // ---------------------------------------------------------------- ids, time

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return (b < 16 ? "0" : "") + b.toString(16);
      })
      .join("");
  }

  var timeFormat = new Intl.DateTimeFormat("ja-JP", { hour: "2-digit", minute: "2-digit" });
  var dateTimeFormat = new Intl.DateTimeFormat("ja-JP", { dateStyle: "medium", timeStyle: "short" });

  function setTime(el, iso) {
    var d = iso ? new Date(iso) : null;
    if (!d || isNaN(d.getTime())) {
      el.textContent = "";
      return;
    }
    el.textContent = timeFormat.format(d);
    el.dateTime = d.toISOString();
    el.title = dateTimeFormat.format(d);
  }

  // ---------------------------------------------------------------- scrolling

  function nearBottom() {
    var s = els.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }
  function scrollToBottom() {
    els.scroll.scrollTop = els.scroll.scrollHeight;
  }
  function keepBottom(fn, force) {
    var stick = force || nearBottom();
    fn();
    if (stick) {
      scrollToBottom();
    }
  }

  // ---------------------------------------------------------------- rendering

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function thumbIcon(up) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute(
      "d",
      "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 " +
        "9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"
    );
    if (!up) {
      svg.setAttribute("transform", "rotate(180)");
    }
    svg.appendChild(path);
    return svg;
  }

  function roleLabel(role) {
    if (role === "bot") {
      return S.roleBot;
    }
    if (role === "operator") {
      return S.roleOperator;
    }
    return null;
  }

  function buildMessage(role) {
    var li = el("li", "msg msg--" + role);
    li.setAttribute("data-testid", "message");
    li.setAttribute("data-role", role);
    var who = roleLabel(role);
    if (who) {
      li.appendChild(el("span", "msg__who", who));
    } else if (role === "customer") {
      li.appendChild(el("span", "visually-hidden", S.roleCustomer));
    }
    var bubble = el("div", "msg__bubble");
    var text = el("p", "msg__text");
    text.setAttribute("data-testid", "message-text");
    bubble.appendChild(text);
    li.appendChild(bubble);
    if (role !== "system") {
      var footer = el("div", "msg__footer");
      if (role === "bot") {
        footer.appendChild(thumbButton(li, 1));
        footer.appendChild(thumbButton(li, -1));
      }
      var time = el("time", "msg__time");
      footer.appendChild(time);
      if (role === "customer") {
        var st = el("span", "msg__state");
        st.setAttribute("data-testid", "message-state");
        footer.appendChild(st);
      }
      li.appendChild(footer);
    }
    return li;
  }

  function thumbButton(li, value) {
    var b = el("button", "thumb");
    b.type = "button";
    b.setAttribute("data-testid", value === 1 ? "thumb-up" : "thumb-down");
    b.setAttribute("aria-label", value === 1 ? S.thumbUp : S.thumbDown);
    b.title = value === 1 ? S.thumbUp : S.thumbDown;
    b.setAttribute("aria-pressed", "false");
    b.appendChild(thumbIcon(value === 1));
    b.addEventListener("click", function () {
      var seq = parseInt(li.getAttribute("data-seq"), 10);
      var current = li.getAttribute("data-feedback");
      var next = current === String(value) ? null : value;
      if (!send({ type: "feedback.set", seq: seq, value: next })) {
        showError(S.notConnected);
      }
    });
    return b;
  }

  function setFeedback(li, value) {
    li.setAttribute("data-feedback", value === 1 || value === -1 ? String(value) : "");
    var up = li.querySelector('[data-testid="thumb-up"]');
    var down = li.querySelector('[data-testid="thumb-down"]');
    if (up) {
      up.setAttribute("aria-pressed", value === 1 ? "true" : "false");
    }
    if (down) {
      down.setAttribute("aria-pressed", value === -1 ? "true" : "false");
    }
  }

  function setFaqNote(li, faq) {
    var note = li.querySelector(".msg__faq");
    var questions = (Array.isArray(faq) ? faq : [])
      .map(function (f) {
        return f && typeof f.question === "string" ? f.question : "";
      })
      .filter(Boolean);
    if (!questions.length) {
      if (note) {
        note.remove();
      }
      return;
    }
    if (!note) {
      note = el("p", "msg__faq");
      note.setAttribute("data-testid", "faq-note");
      li.insertBefore(note, li.querySelector(".msg__footer"));
    }
    note.textContent = S.faqNote + questions.join(S.faqSeparator);
  }

  function fillMessage(li, m) {
    li.setAttribute("data-seq", String(m.seq));
    li.removeAttribute("data-state");
    li.querySelector(".msg__text").textContent = typeof m.text === "string" ? m.text : "";
    var time = li.querySelector(".msg__time");
    if (time) {
      setTime(time, m.created_at);
    }
    var st = li.querySelector(".msg__state");
    if (st) {
      st.textContent = "";
    }
    var retry = li.querySelector(".msg__retry");
    if (retry) {
      retry.remove();
    }
    if (m.client_msg_id) {
      li.setAttribute("data-client-msg-id", m.client_msg_id);
    }
    if (m.role === "bot") {
      setFeedback(li, m.feedback);
      setFaqNote(li, m.faq);
    }
  }

  // Insert keeping seq order; elements without a seq (pending, streaming) stay after all seq'd ones.
  function insertBySeq(li, seq) {
    var children = els.list.children;
    var before = null;
    for (var i = children.length - 1; i >= 0; i--) {
      var s = children[i].getAttribute("data-seq");
      if (s === null || parseInt(s, 10) > seq) {
        before = children[i];
      } else {
        break;
      }
    }
    els.list.insertBefore(li, before);
  }

  function upsertMessage(m) {
    if (!m || typeof m.seq !== "number" || typeof m.role !== "string") {
      return;
    }
    if (m.seq > state.maxSeq) {
      state.maxSeq = m.seq;
    }
    var li = bySeq.get(m.seq);
    if (li) {
      fillMessage(li, m); // a replay or an update of a message already shown
      return;
    }
    var role = ["customer", "bot", "operator", "system"].indexOf(m.role) >= 0 ? m.role : "system";
    keepBottom(function () {
      if (role === "customer" && m.client_msg_id && pendingEls.has(m.client_msg_id)) {
        li = pendingEls.get(m.client_msg_id);
        pendingEls.delete(m.client_msg_id);
        li.remove();
      } else {
        li = buildMessage(role);
      }
      fillMessage(li, m);
      bySeq.set(m.seq, li);
      insertBySeq(li, m.seq);
    }, role === "customer");

    if (role === "customer" && m.client_msg_id && state.pending.has(m.client_msg_id)) {
      state.pending.delete(m.client_msg_id);
      persist();
      armAckTimer();
    }
    if ((role === "bot" || role === "operator") && typeof m.in_reply_to_seq === "number") {
      answered.add(m.in_reply_to_seq);
      endStream(m.in_reply_to_seq);
    }
  }

  function renderPending(p) {
    var li = pendingEls.get(p.id);
    if (!li) {
      li = buildMessage("customer");
      li.setAttribute("data-client-msg-id", p.id);
      li.querySelector(".msg__text").textContent = p.text;
      pendingEls.set(p.id, li);
      keepBottom(function () {
        els.list.appendChild(li);
      }, true);
    }
    li.setAttribute("data-state", "pending");
    li.querySelector(".msg__state").textContent = S.sending;
    var retry = li.querySelector(".msg__retry");
    if (retry) {
      retry.remove();
    }
    return li;
  }

  function markFailed(clientMsgId) {
    var p = state.pending.get(clientMsgId);
    state.pending.delete(clientMsgId);
    persist();
    var li = pendingEls.get(clientMsgId);
    if (!li) {
      return;
    }
    li.setAttribute("data-state", "failed");
    li.querySelector(".msg__state").textContent = S.failed;
    if (!li.querySelector(".msg__retry") && p) {
      var retry = el("button", "msg__retry", S.retry);
      retry.type = "button";
      retry.setAttribute("data-testid", "message-retry");
      retry.addEventListener("click", function () {
        if (Array.from(p.text).length > MAX_CHARS || !p.text.trim()) {
          return;
        }
        state.pending.set(p.id, { id: p.id, text: p.text, sentAt: 0 });
        persist();
        renderPending(p);
        flushPending();
      });
      li.querySelector(".msg__footer").appendChild(retry);
    }
  }

  function clearConversationView() {
    els.list.textContent = "";
    bySeq.clear();
    pendingEls.clear();
    streams.clear();
    answered.clear();
    state.maxSeq = 0;
    updateTyping();
    // Messages the customer typed but the server never stored are kept and shown again.
    state.pending.forEach(renderPending);
  }

  // ---------------------------------------------------------------- streaming replies

  function startStream(inReplyTo) {
    if (answered.has(inReplyTo)) {
      return null;
    }
    var s = streams.get(inReplyTo);
    if (!s) {
      s = { nextIndex: 0, text: "", broken: false, el: null };
      streams.set(inReplyTo, s);
    }
    updateTyping();
    return s;
  }

  function onToken(ev) {
    var s = streams.get(ev.in_reply_to_seq) || startStream(ev.in_reply_to_seq);
    if (!s || typeof ev.text !== "string" || typeof ev.index !== "number") {
      return;
    }
    if (ev.index < s.nextIndex) {
      return; // already shown
    }
    if (ev.index > s.nextIndex) {
      // Tokens were missed (we reconnected mid-reply): a reply missing its beginning reads worse than
      // none, so keep only the typing indicator until the final message arrives.
      s.broken = true;
      if (s.el) {
        s.el.remove();
        s.el = null;
      }
      return;
    }
    s.nextIndex += 1;
    if (s.broken) {
      return;
    }
    s.text += ev.text;
    keepBottom(function () {
      if (!s.el) {
        s.el = el("li", "msg msg--streaming");
        s.el.setAttribute("data-testid", "streaming-reply");
        s.el.setAttribute("data-in-reply-to", String(ev.in_reply_to_seq));
        // The final message is announced by the log region; don't read out every token.
        s.el.setAttribute("aria-hidden", "true");
        s.el.appendChild(el("span", "msg__who", S.roleBot));
        var bubble = el("div", "msg__bubble");
        bubble.appendChild(el("p", "msg__text"));
        s.el.appendChild(bubble);
        els.list.appendChild(s.el);
      }
      s.el.querySelector(".msg__text").textContent = s.text;
    });
  }

  function endStream(inReplyTo) {
    var s = streams.get(inReplyTo);
    if (s && s.el) {
      s.el.remove();
    }
    streams.delete(inReplyTo);
    updateTyping();
  }

  function updateTyping() {
    keepBottom(function () {
      els.typing.hidden = streams.size === 0;
    });
  }

  // ---------------------------------------------------------------- status, errors

  var STATUS_TEXT = {
    bot: S.statusBot,
    waiting_for_operator: S.statusWaiting,
    operator: S.statusOperator,
    closed: S.statusClosed,
  };

  function setStatus(status) {
    if (!Object.prototype.hasOwnProperty.call(STATUS_TEXT, status)) {
      return;
    }
    state.status = status;
    els.status.textContent = STATUS_TEXT[status];
    els.status.setAttribute("data-status", status);
    root.setAttribute("data-conversation-status", status);
    els.closed.hidden = status !== "closed";
    if (status !== "bot") {
      // Nobody is writing a bot reply any more.
      streams.forEach(function (s, seq) {
        endStream(seq);
      });
    }
    updateControls();
  }

  function updateControls() {
    var closed = state.status === "closed";
    els.input.disabled = closed;
    els.send.disabled = closed;
    els.operator.disabled = !state.ready || state.status !== "bot";
    els.operator.textContent =
      state.status === "waiting_for_operator" || state.status === "operator" ? S.operatorRequested : S.operatorButton;
    els.operator.setAttribute("aria-pressed", state.status === "bot" ? "false" : "true");
    root.querySelectorAll('[data-testid="thumb-up"], [data-testid="thumb-down"]').forEach(function (b) {
      b.disabled = !state.ready;
    });
  }

  function showError(message) {
    els.errorText.textContent = message || "";
    els.error.hidden = !message;
  }

  var CONN_TEXT = { connecting: S.connecting, open: S.connected, offline: S.offline };

  function setConn(conn, seconds) {
    els.conn.setAttribute("data-state", conn);
    root.setAttribute("data-connection", conn);
    if (conn === "reconnecting") {
      els.connText.textContent = seconds > 0 ? fmt(S.reconnectingIn, { seconds: seconds }) : S.reconnectingNow;
    } else {
      els.connText.textContent = CONN_TEXT[conn] || "";
    }
  }

  // ---------------------------------------------------------------- socket

  function wsUrl() {
    var path = root.getAttribute("data-ws-path") || "/ws/chat/";
    return (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + path;
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      return false;
    }
    if (!state.ready && obj.type !== "hello") {
      return false;
    }
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  function clearTimers() {
    [state.pingTimer, state.pongTimer, state.ackTimer, state.connectTimer].forEach(function (t) {
      if (t) {
        clearTimeout(t);
      }
    });
    state.pingTimer = state.pongTimer = state.ackTimer = state.connectTimer = null;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = state.countdownTimer = null;
    if (state.ws) {
      return;
    }
    setConn(state.attempt === 0 ? "connecting" : "reconnecting", 0);
    var ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.connection += 1;
    // A connection that neither opens nor fails (a half-dead network) is given up and retried.
    state.connectTimer = setTimeout(function () {
      if (state.ws === ws && !state.ready) {
        dropSocket();
        scheduleReconnect();
      }
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = function () {
      var hello = { type: "hello", after_seq: state.maxSeq };
      if (state.token) {
        hello.token = state.token;
      }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (e) {
      if (typeof e.data !== "string") {
        return;
      }
      var ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (ev && typeof ev === "object") {
        handle(ev);
      }
    };
    ws.onclose = function (e) {
      if (state.ws !== ws) {
        return;
      }
      dropSocket();
      if ((e.code === 4401 || state.resetOnClose) && state.token) {
        // The stored token was refused (expired, forged, another deployment): start a new conversation.
        state.resetOnClose = false;
        state.token = null;
        state.conversationId = null;
        persist();
        clearConversationView();
        state.attempt = 0;
        connect();
        return;
      }
      scheduleReconnect();
    };
  }

  // Forget the current socket without waiting for a closing handshake (it may be dead).
  function dropSocket() {
    var ws = state.ws;
    state.ws = null;
    state.ready = false;
    clearTimers();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    }
    updateControls();
  }

  function scheduleReconnect() {
    if (state.reconnectTimer) {
      return;
    }
    if (navigator.onLine === false) {
      setConn("offline");
      return; // the "online" event reconnects
    }
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, state.attempt));
    delay = Math.round(delay * (0.8 + Math.random() * 0.4));
    state.attempt += 1;
    var due = Date.now() + delay;
    var tick = function () {
      setConn("reconnecting", Math.max(0, Math.ceil((due - Date.now()) / 1000)));
    };
    tick();
    state.countdownTimer = setInterval(tick, 1000);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (state.ws) {
      return;
    }
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = state.countdownTimer = null;
    connect();
  }

  function keepAlive() {
    clearTimeout(state.pingTimer);
    state.pingTimer = setTimeout(function () {
      if (send({ type: "ping" })) {
        clearTimeout(state.pongTimer);
        state.pongTimer = setTimeout(function () {
          // No answer: the connection is dead even if the browser hasn't noticed.
          dropSocket();
          scheduleReconnect();
        }, PONG_TIMEOUT_MS);
      }
      keepAlive();
    }, PING_EVERY_MS);
  }

  // A message the server has not echoed within ACK_TIMEOUT_MS: assume the connection is stuck, reconnect and
  // resend (same client_msg_id, so the server stores it once).
  function armAckTimer() {
    clearTimeout(state.ackTimer);
    state.ackTimer = null;
    var oldest = null;
    state.pending.forEach(function (p) {
      if (p.sentAt && (oldest === null || p.sentAt < oldest)) {
        oldest = p.sentAt;
      }
    });
    if (oldest === null || !state.ready) {
      return;
    }
    state.ackTimer = setTimeout(function () {
      dropSocket();
      scheduleReconnect();
    }, Math.max(0, oldest + ACK_TIMEOUT_MS - Date.now()));
  }

  // Send every pending message not yet sent on this connection (a message sent on an earlier one may have
  // been lost with it; the same client_msg_id makes a duplicate harmless).
  function flushPending() {
    if (!state.ready) {
      return;
    }
    state.pending.forEach(function (p) {
      if (p.sentOn === state.connection) {
        return;
      }
      if (send({ type: "message.send", text: p.text, client_msg_id: p.id })) {
        p.sentAt = Date.now();
        p.sentOn = state.connection;
      }
    });
    armAckTimer();
  }

  // ---------------------------------------------------------------- events from the server

  function handle(ev) {
    switch (ev.type) {
      case "conversation.ready":
        if (state.conversationId && ev.conversation_id !== state.conversationId && state.maxSeq > 0) {
          // A different conversation than the one on screen: show it from the start.
          state.conversationId = ev.conversation_id;
          state.token = ev.token;
          persist();
          clearConversationView();
          dropSocket();
          connect();
          return;
        }
        state.token = ev.token;
        state.conversationId = ev.conversation_id;
        persist();
        // A reply that was being written when we lost the connection either finished (it is in the history
        // that follows) or was stopped; if it is still being written the server says reply.started again.
        streams.forEach(function (s, seq) {
          endStream(seq);
        });
        state.ready = true;
        state.attempt = 0;
        clearTimeout(state.connectTimer);
        state.connectTimer = null;
        setConn("open");
        setStatus(ev.status);
        updateControls();
        keepAlive();
        break;
      case "history":
        (Array.isArray(ev.messages) ? ev.messages : []).forEach(upsertMessage);
        // Anything still pending after the history was never stored: send (again) now.
        flushPending();
        break;
      case "message.created":
        upsertMessage(ev.message);
        break;
      case "reply.started":
        if (typeof ev.in_reply_to_seq === "number") {
          startStream(ev.in_reply_to_seq);
        }
        break;
      case "reply.token":
        onToken(ev);
        break;
      case "reply.stopped":
        endStream(ev.in_reply_to_seq);
        break;
      case "conversation.status":
        setStatus(ev.status);
        break;
      case "feedback.updated":
        var li = bySeq.get(ev.seq);
        if (li) {
          setFeedback(li, ev.value);
        }
        break;
      case "error":
        onError(ev);
        break;
      case "pong":
        clearTimeout(state.pongTimer);
        state.pongTimer = null;
        break;
      default:
        break; // newer server, older page: ignore what we don't know
    }
  }

  function onError(ev) {
    showError(typeof ev.message === "string" ? ev.message : "");
    updateControls();
    if (ev.code === "invalid_token") {
      state.resetOnClose = true;
      return;
    }
    if (ev.client_msg_id && state.pending.has(ev.client_msg_id)) {
      markFailed(ev.client_msg_id);
      armAckTimer();
    }
  }

  // ---------------------------------------------------------------- composer

  function updateCount() {
    var n = Array.from(els.input.value).length;
    var show = n > MAX_CHARS * 0.8;
    els.count.hidden = !show;
    if (show) {
      els.count.textContent = n + " / " + MAX_CHARS;
      els.count.setAttribute("data-over", n > MAX_CHARS ? "true" : "false");
    }
  }

  function autoGrow() {
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight + 2, 160) + "px";
  }

  function submit() {
    var text = els.input.value;
    if (!text.trim() || state.status === "closed") {
      return;
    }
    if (Array.from(text).length > MAX_CHARS) {
      showError(fmt(S.tooLong, { max: MAX_CHARS }));
      return;
    }
    showError("");
    var p = { id: newClientId(), text: text, sentAt: 0 };
    state.pending.set(p.id, p);
    persist();
    renderPending(p);
    els.input.value = "";
    autoGrow();
    updateCount();
    flushPending(); // if we're offline it goes out after the reconnect
    els.input.focus();
  }

  // IME: the Enter that confirms a kana→kanji conversion must not send. isComposing covers modern browsers;
  // keyCode 229 covers Safari, which reports the confirming keydown after compositionend.
  var composing = false;
  els.input.addEventListener("compositionstart", function () {
    composing = true;
  });
  els.input.addEventListener("compositionend", function () {
    composing = false;
  });
  els.input.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    if (e.isComposing || composing || e.keyCode === 229) {
      return;
    }
    e.preventDefault();
    submit();
  });
  els.input.addEventListener("input", function () {
    autoGrow();
    updateCount();
  });
  els.form.addEventListener("submit", function (e) {
    e.preventDefault();
    submit();
  });

  els.operator.addEventListener("click", function () {
    if (!send({ type: "operator.request" })) {
      showError(S.notConnected);
      return;
    }
    els.operator.disabled = true; // until conversation.status arrives
  });

  els.errorDismiss.addEventListener("click", function () {
    showError("");
    els.input.focus();
  });

  els.newConversation.addEventListener("click", function () {
    state.token = null;
    state.conversationId = null;
    state.pending.clear();
    persist();
    clearConversationView();
    showError("");
    setStatus("bot");
    dropSocket();
    state.attempt = 0;
    connect();
    els.input.focus();
  });

  // ---------------------------------------------------------------- embed: talk to the host page

  if (IS_EMBED && window.parent !== window) {
    var closeWidget = function () {
      // Carries no conversation data, so any host page may receive it.
      window.parent.postMessage({ type: "karakuri-chat:close" }, "*");
    };
    if (els.close) {
      els.close.addEventListener("click", closeWidget);
    }
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !e.isComposing) {
        closeWidget();
      }
    });
    window.addEventListener("message", function (e) {
      if (e.source === window.parent && e.data && e.data.type === "karakuri-chat:opened") {
        els.input.focus();
        scrollToBottom();
      }
    });
  } else if (els.close) {
    els.close.hidden = true;
  }

  // ---------------------------------------------------------------- start

  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", function () {
    if (!state.ws) {
      setConn("offline");
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && !state.ws) {
      reconnectNow(); // a phone coming back from the background shouldn't wait out the back-off
    }
  });

  state.pending.forEach(renderPending);
  updateControls();
  connect();
})();
