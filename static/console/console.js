/* Operator console: the live queue and the conversation view (protocol: docs/console.md).
 *
 * - Every piece of customer, bot or operator text goes into the page with textContent, never innerHTML.
 * - One socket per page (/ws/console/); after every (re)connect the page reloads its data over HTTP, so nothing
 *   published while it was disconnected is missed.
 */
(function () {
  "use strict";

  var ROLE_LABEL = { customer: "お客様", bot: "AIアシスタント", operator: "担当者", system: "システム" };
  var STATUS_LABEL = {
    bot: "AI対応中",
    waiting_for_operator: "対応待ち",
    operator: "担当者対応中",
    closed: "終了",
  };
  var SECTION_OF = { waiting_for_operator: "waiting", operator: "operator", bot: "bot", closed: "closed" };
  var ATTRIBUTE_LABEL = {
    helpfulness: "有用性",
    correctness: "正確性",
    coherence: "一貫性",
    complexity: "複雑さ",
    verbosity: "冗長さ",
    quality: "品質",
    toxicity: "有害性",
    humor: "ユーモア",
    creativity: "創造性",
  };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function q(name, root) {
    return (root || document).querySelector('[data-testid="' + name + '"]');
  }

  function elapsed(iso) {
    if (!iso) return "";
    var s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + "秒";
    if (s < 3600) return Math.floor(s / 60) + "分" + (s % 60) + "秒";
    return Math.floor(s / 3600) + "時間" + Math.floor((s % 3600) / 60) + "分";
  }

  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString("ja-JP", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  // ------------------------------------------------------------------ socket

  function Socket(onEvent, onOpen) {
    var self = this;
    var status = q("connection-status");
    var backoff = 1000;
    var pingTimer = null;
    var seq = 0;
    self.me = null;
    self.pending = {};

    function setState(state) {
      if (!status) return;
      status.hidden = state === "open";
      status.setAttribute("data-state", state);
      status.textContent = state === "open" ? "" : "再接続しています…";
    }

    function open() {
      var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/console/");
      self.ws = ws;
      ws.onmessage = function (msg) {
        var ev;
        try {
          ev = JSON.parse(msg.data);
        } catch (e) {
          return;
        }
        if (ev.type === "ready") {
          self.me = ev.user;
          backoff = 1000;
          setState("open");
          onOpen();
          return;
        }
        if ((ev.type === "ack" || ev.type === "error") && ev.request_id && self.pending[ev.request_id]) {
          var done = self.pending[ev.request_id];
          delete self.pending[ev.request_id];
          done(ev);
        }
        onEvent(ev);
      };
      ws.onclose = function (e) {
        clearInterval(pingTimer);
        setState("reconnecting");
        setTimeout(open, backoff);
        backoff = Math.min(backoff * 2, 30000);
      };
      pingTimer = setInterval(function () {
        self.send({ type: "ping" });
      }, 25000);
    }

    self.send = function (event, done) {
      if (!self.ws || self.ws.readyState !== 1) return false;
      seq += 1;
      event.request_id = "r" + seq;
      if (done) self.pending[event.request_id] = done;
      self.ws.send(JSON.stringify(event));
      return true;
    };
    setState("connecting");
    open();
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 403) {
        location.reload(); // signed out: the page redirects to the login page
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // ------------------------------------------------------------------ queue

  function initQueue(app) {
    var api = app.getAttribute("data-api");
    var convUrl = app.getAttribute("data-conversation-url");
    var statusSel = q("queue-status");
    var search = q("queue-search");
    var rows = {}; // id -> row data
    var socket;
    var refetchTimer = null;

    function sectionOf(row) {
      return SECTION_OF[row.status];
    }

    function visible(row) {
      var f = statusSel.value;
      if (f === "all") return true;
      if (f === "mine") return row.status === "operator" && row.assigned_operator && socket.me && row.assigned_operator.id === socket.me.id;
      return sectionOf(row) === f;
    }

    function renderRow(row) {
      var li = el("li", "qrow qrow--" + row.status);
      li.setAttribute("data-testid", "queue-row");
      li.setAttribute("data-conversation-id", row.id);
      li.setAttribute("data-status", row.status);
      var a = el("a", "qrow__link");
      a.href = convUrl + row.id + "/";
      var top = el("div", "qrow__top");
      top.appendChild(el("span", "badge badge--" + row.status, STATUS_LABEL[row.status] || row.status));
      if (row.status === "waiting_for_operator") {
        var wait = el("span", "qrow__wait", "待ち時間 " + elapsed(row.waiting_since));
        wait.setAttribute("data-testid", "queue-wait");
        wait.setAttribute("data-since", row.waiting_since || "");
        top.appendChild(wait);
      }
      if (row.assigned_operator) top.appendChild(el("span", "qrow__holder", "担当: " + row.assigned_operator.name));
      if (row.thumbs_down) top.appendChild(el("span", "flag flag--down", "低評価"));
      if (row.unconfident) top.appendChild(el("span", "flag", "確信なし"));
      top.appendChild(el("time", "qrow__time", clock(row.updated_at)));
      a.appendChild(top);
      var first = el("p", "qrow__q", row.first_question || "（質問なし）");
      first.setAttribute("data-testid", "queue-question");
      a.appendChild(first);
      if (row.last_text && row.last_text !== row.first_question) {
        a.appendChild(el("p", "qrow__last", (ROLE_LABEL[row.last_role] || "") + ": " + row.last_text));
      }
      li.appendChild(a);
      return li;
    }

    function render() {
      var groups = { waiting: [], operator: [], bot: [], closed: [] };
      Object.keys(rows).forEach(function (id) {
        var row = rows[id];
        if (visible(row) && groups[sectionOf(row)]) groups[sectionOf(row)].push(row);
      });
      groups.waiting.sort(function (a, b) {
        return Date.parse(a.waiting_since || a.updated_at) - Date.parse(b.waiting_since || b.updated_at);
      });
      ["operator", "bot", "closed"].forEach(function (k) {
        groups[k].sort(function (a, b) {
          return Date.parse(b.updated_at) - Date.parse(a.updated_at);
        });
      });
      groups.closed = groups.closed.slice(0, 20);
      Object.keys(groups).forEach(function (k) {
        var list = app.querySelector('[data-section="' + k + '"]');
        list.textContent = "";
        groups[k].forEach(function (row) {
          list.appendChild(renderRow(row));
        });
        if (!groups[k].length) list.appendChild(el("li", "empty", "なし"));
        app.querySelector('[data-count="' + k + '"]').textContent = "(" + groups[k].length + ")";
      });
    }

    function load() {
      var url = api + "?status=" + encodeURIComponent(statusSel.value) + "&q=" + encodeURIComponent(search.value.trim());
      getJSON(url).then(function (data) {
        rows = {};
        Object.keys(data.sections).forEach(function (k) {
          data.sections[k].forEach(function (row) {
            rows[row.id] = row;
          });
        });
        render();
      });
    }

    function refetchSoon() {
      clearTimeout(refetchTimer);
      refetchTimer = setTimeout(load, 300);
    }

    function onEvent(ev) {
      if (!ev.conversation_id) return;
      if (search.value.trim()) {
        refetchSoon(); // a search result can change with any message; ask the server
        return;
      }
      var row = rows[ev.conversation_id];
      if (ev.type === "feedback.updated") {
        if (row && ev.value === -1) {
          row.thumbs_down = true;
          render();
        }
        return;
      }
      if (!ev.conversation) return;
      row = Object.assign(row || { first_question: "", last_text: "", thumbs_down: false, unconfident: false }, ev.conversation);
      if (ev.type === "message.created" && ev.message.role !== "system") {
        row.last_text = ev.message.text.slice(0, 80);
        row.last_role = ev.message.role;
        if (ev.message.role === "customer" && !row.first_question) row.first_question = row.last_text;
        if (ev.message.role === "bot" && ev.message.provenance && ev.message.provenance.confident === false) {
          row.unconfident = true;
        }
      }
      rows[row.id] = row;
      render();
    }

    statusSel.addEventListener("change", load);
    search.addEventListener("input", refetchSoon);
    app.closest("main").querySelector("form").addEventListener("submit", function (e) {
      e.preventDefault();
      load();
    });
    setInterval(function () {
      app.querySelectorAll('[data-testid="queue-wait"]').forEach(function (w) {
        w.textContent = "待ち時間 " + elapsed(w.getAttribute("data-since"));
      });
    }, 1000);
    socket = new Socket(onEvent, load);
  }

  // ------------------------------------------------------------------ conversation

  function initConversation(app) {
    var page = JSON.parse(document.getElementById("page-data").textContent);
    var convId = page.conversation_id;
    var api = app.getAttribute("data-api");
    var transcript = q("transcript");
    var errorBox = q("console-error");
    var composer = q("composer");
    var textBox = q("reply-text");
    var faqSel = q("reply-faq");
    var cannedSel = q("canned-select");
    var draftBox = q("draft");
    var draftWaiting = q("draft-waiting");
    var buttons = {
      take_over: q("take-over"),
      hand_back: q("hand-back"),
      close: q("close-conversation"),
    };
    var state = { conversation: null, lastSeq: 0, lastCustomerSeq: 0, draft: null, requestedDraftSeq: 0, canned: [] };
    var socket;

    page.canned.forEach(function (c) {
      var o = el("option", null, "/" + c.shortcut + " " + c.title);
      o.value = c.shortcut;
      cannedSel.appendChild(o);
    });

    function showError(text) {
      errorBox.textContent = text || "";
      errorBox.hidden = !text;
    }

    function holding() {
      var c = state.conversation;
      return !!(c && c.status === "operator" && c.assigned_operator && socket && socket.me && c.assigned_operator.id === socket.me.id);
    }

    function renderHeader() {
      var c = state.conversation;
      if (!c) return;
      var badge = q("conv-status");
      badge.textContent = STATUS_LABEL[c.status] || c.status;
      badge.className = "badge badge--" + c.status;
      badge.setAttribute("data-status", c.status);
      q("conv-holder").textContent = c.assigned_operator && c.status === "operator" ? "担当: " + c.assigned_operator.name : "";
      var free = !c.assigned_operator || c.status !== "operator";
      buttons.take_over.disabled = !page.can_handle || c.status === "closed" || !free;
      buttons.hand_back.disabled = !holding();
      buttons.close.disabled = !page.can_handle || c.status === "closed" || !(free || holding() || page.can_close_any);
      composer.hidden = !holding();
      app.setAttribute("data-holding", holding() ? "true" : "false");
      maybeRequestDraft();
    }

    function provenanceBlock(m) {
      var p = m.provenance || {};
      var details = el("details", "prov");
      details.setAttribute("data-testid", "provenance");
      details.appendChild(el("summary", null, "根拠・詳細" + (p.confident === false ? "（確信なし）" : "") + (p.fallback ? "（安全な回答に差し替え）" : "")));
      var dl = el("dl");
      function row(k, v) {
        dl.appendChild(el("dt", null, k));
        var dd = el("dd");
        if (v instanceof Node) dd.appendChild(v);
        else dd.textContent = v;
        dl.appendChild(dd);
      }
      var cited = p.cited_faq_ids || [];
      var faqs = el("ol", "prov__faq");
      (p.faq || []).forEach(function (f) {
        var li = el(
          "li",
          cited.indexOf(f.id) >= 0 ? "cited" : null,
          f.id + "「" + f.question + "」 score " + f.score + " (BM25 " + (f.sparse === null ? "—" : f.sparse) + " / 埋め込み " + (f.dense === null ? "—" : f.dense) + ")" + (cited.indexOf(f.id) >= 0 ? " ← 引用" : "")
        );
        faqs.appendChild(li);
      });
      row("検索したFAQ", (p.faq || []).length ? faqs : "なし");
      row("確信", p.confident ? "あり" : "なし");
      row("KBリビジョン", p.kb_revision === undefined ? "—" : "r" + p.kb_revision);
      row("バックエンド / モデル", (p.backend || "—") + " / " + (p.model_id || "—"));
      var attrs = p.attributes ? Object.keys(p.attributes).map(function (k) {
        return (ATTRIBUTE_LABEL[k] || k) + " " + p.attributes[k];
      }).join("、") : "既定値";
      row("属性", attrs);
      var t = p.timings_ms || {};
      row("時間 (ms)", "検索 " + t.retrieval + " / 最初のトークン " + t.first_token + " / 生成 " + t.generation + " / 合計 " + t.total);
      var checks = p.checks || {};
      row(
        "チェック",
        checks.passed === undefined ? "—" : checks.passed ? "合格" : "不合格: " + (checks.failures || []).map(function (f) {
          return f.check + " (" + f.reason + ")";
        }).join("、")
      );
      details.appendChild(dl);
      return details;
    }

    function renderMessage(m) {
      var li = el("li", "tmsg tmsg--" + m.role);
      li.id = "m" + m.seq;
      li.setAttribute("data-testid", "transcript-message");
      li.setAttribute("data-role", m.role);
      li.setAttribute("data-seq", String(m.seq));
      var head = el("div", "tmsg__head");
      var who = ROLE_LABEL[m.role] || m.role;
      if (m.role === "operator" && m.provenance && m.provenance.operator) who += "（" + m.provenance.operator + "）";
      head.appendChild(el("span", "tmsg__who", "#" + m.seq + " " + who));
      head.appendChild(el("time", "tmsg__time", clock(m.created_at)));
      if (m.role === "bot") {
        var fb = el("span", "thumbs");
        fb.setAttribute("data-testid", "feedback");
        head.appendChild(fb);
        if (page.can_correct && m.in_reply_to_seq) {
          var fix = el("a", "fix", "この回答を修正");
          fix.href = page.correct_url.replace("{seq}", m.seq);
          fix.setAttribute("data-testid", "correct-link");
          head.appendChild(fix);
        }
      }
      if (m.role === "operator" && m.provenance && m.provenance.draft_id) head.appendChild(el("span", "flag", "下書きから"));
      li.appendChild(head);
      var text = el("p", "tmsg__text", m.text);
      text.setAttribute("data-testid", "transcript-text");
      li.appendChild(text);
      if (m.role === "bot") li.appendChild(provenanceBlock(m));
      setFeedback(li, m.feedback);
      return li;
    }

    function setFeedback(li, value) {
      var fb = li.querySelector('[data-testid="feedback"]');
      if (!fb) return;
      li.setAttribute("data-feedback", value === null || value === undefined ? "" : String(value));
      fb.textContent = value === 1 ? "👍 役に立った" : value === -1 ? "👎 役に立たなかった" : "";
    }

    function addMessage(m) {
      if (m.seq <= state.lastSeq) return;
      transcript.appendChild(renderMessage(m));
      state.lastSeq = m.seq;
      if (m.role === "customer") state.lastCustomerSeq = m.seq;
      if (m.role === "operator" && state.draft && state.draft.in_reply_to_seq <= state.lastCustomerSeq) {
        // answered: the draft no longer applies
        if (m.in_reply_to_seq === state.draft.in_reply_to_seq) hideDraft();
      }
    }

    function load() {
      return getJSON(api).then(function (data) {
        state.conversation = data.conversation;
        data.messages.forEach(addMessage);
        renderHeader();
        if (location.hash) {
          var target = document.getElementById(location.hash.slice(1));
          if (target) target.scrollIntoView();
        }
      });
    }

    // Copilot draft: for the last customer message, while this operator holds the conversation.
    function maybeRequestDraft() {
      if (!holding() || !state.lastCustomerSeq) return;
      if (state.draft && state.draft.in_reply_to_seq === state.lastCustomerSeq) return;
      if (state.requestedDraftSeq === state.lastCustomerSeq) return;
      if (lastAnsweredSeq() >= state.lastCustomerSeq) return;
      state.requestedDraftSeq = state.lastCustomerSeq;
      draftWaiting.hidden = false;
      socket.send({ type: "draft.request", conversation_id: convId });
    }

    function lastAnsweredSeq() {
      var ops = transcript.querySelectorAll('[data-role="operator"]');
      return ops.length ? Number(ops[ops.length - 1].getAttribute("data-seq")) : 0;
    }

    function showDraft(d) {
      if (d.in_reply_to_seq !== state.lastCustomerSeq) return;
      state.draft = d;
      draftWaiting.hidden = true;
      q("draft-text").textContent = d.text;
      var cited = d.cited_faq_ids || [];
      q("draft-meta").textContent = "#" + d.in_reply_to_seq + " への回答案" + (d.confident ? "（FAQ " + cited.join("、") + "）" : "（確かなFAQなし）");
      draftBox.hidden = false;
      // FAQ choices for the record of (draft, sent text)
      while (faqSel.options.length > 2) faqSel.remove(2);
      (d.faq || []).forEach(function (f) {
        var o = el("option", null, f.id + ": " + f.question);
        o.value = f.id;
        faqSel.appendChild(o);
      });
    }

    function hideDraft() {
      state.draft = null;
      draftBox.hidden = true;
      draftWaiting.hidden = true;
      faqSel.value = "";
    }

    function useDraft() {
      if (!state.draft) return;
      textBox.value = state.draft.text;
      textBox.focus();
    }

    // Sending.
    var cannedUsed = [];

    function sendReply() {
      var text = textBox.value;
      if (!text.trim()) {
        showError("メッセージを入力してください。");
        return;
      }
      var event = {
        type: "message.send",
        conversation_id: convId,
        text: text,
        client_msg_id: "op-" + Date.now() + "-" + Math.random().toString(36).slice(2, 8),
      };
      if (cannedUsed.length) event.canned = cannedUsed.slice(0, 10);
      if (state.draft) {
        event.draft_id = state.draft.id;
        if (faqSel.value === "__none__") event.no_faq_covers = true;
        else if (faqSel.value) event.faq_external_id = faqSel.value;
      }
      q("reply-send").disabled = true;
      var sent = socket.send(event, function (ev) {
        q("reply-send").disabled = false;
        if (ev.type === "error") {
          showError(ev.message);
          return;
        }
        showError("");
        textBox.value = "";
        cannedUsed = [];
        hideDraft();
      });
      if (!sent) {
        q("reply-send").disabled = false;
        showError("接続が切れています。再接続後にもう一度お試しください。");
      }
    }

    function insertCanned(shortcut, replaceFrom) {
      var c = page.canned.filter(function (x) {
        return x.shortcut === shortcut;
      })[0];
      if (!c) return false;
      var start = replaceFrom === undefined ? textBox.selectionStart : replaceFrom;
      var end = textBox.selectionEnd;
      textBox.value = textBox.value.slice(0, start) + c.text + textBox.value.slice(end);
      textBox.selectionStart = textBox.selectionEnd = start + c.text.length;
      cannedUsed.push(shortcut);
      return true;
    }

    textBox.addEventListener("keydown", function (e) {
      if (e.isComposing) return;
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        sendReply();
      } else if (e.key === "Tab" && !e.shiftKey) {
        var before = textBox.value.slice(0, textBox.selectionStart);
        var m = /(^|\s)\/([a-z0-9_-]+)$/.exec(before);
        if (m && insertCanned(m[2], textBox.selectionStart - m[2].length - 1)) e.preventDefault();
      }
    });
    document.addEventListener("keydown", function (e) {
      if (e.altKey && (e.key === "d" || e.key === "D")) {
        e.preventDefault();
        useDraft();
      }
    });
    cannedSel.addEventListener("change", function () {
      if (cannedSel.value) insertCanned(cannedSel.value);
      cannedSel.value = "";
      textBox.focus();
    });
    q("draft-use").addEventListener("click", useDraft);
    q("reply-send").addEventListener("click", sendReply);
    Object.keys(buttons).forEach(function (action) {
      buttons[action].addEventListener("click", function () {
        if (action === "close" && !window.confirm("この会話を終了しますか？")) return;
        buttons[action].disabled = true;
        socket.send({ type: action, conversation_id: convId }, function (ev) {
          if (ev.type === "error") showError(ev.message);
          else showError("");
          renderHeader();
        });
      });
    });

    function onEvent(ev) {
      if (ev.conversation_id !== convId) return;
      if (ev.type === "message.created") {
        if (ev.message.seq > state.lastSeq + 1) {
          load(); // missed something: catch up
          return;
        }
        addMessage(ev.message);
      }
      if (ev.conversation) state.conversation = ev.conversation;
      if (ev.type === "feedback.updated") {
        var li = document.getElementById("m" + ev.seq);
        if (li) setFeedback(li, ev.value);
      }
      if (ev.type === "draft.ready") showDraft(ev.draft);
      renderHeader();
    }

    setInterval(function () {
      var c = state.conversation;
      q("conv-wait").textContent = c && c.status === "waiting_for_operator" ? "待ち時間 " + elapsed(c.waiting_since) : "";
    }, 1000);
    socket = new Socket(onEvent, function () {
      state.requestedDraftSeq = 0;
      load();
    });
  }

  var app = document.querySelector("[data-page]");
  if (!app) return;
  if (app.getAttribute("data-page") === "queue") initQueue(app);
  if (app.getAttribute("data-page") === "conversation") initConversation(app);
})();
