// AgenticPal chat page: websocket streaming on top of a page that works without JS.
// A reply is shown as Markdown while it streams (escaped first, then given a little
// formatting, so nothing the model says can become HTML); a reply that comes with the
// server's rendering ("html", sanitised by nh3) is shown as that. Approval
// cards (an action waiting for the user) are forms rendered by the server; their
// answer goes over the socket as a "decision" frame, or is posted when it is down.
(function () {
  "use strict";
  var root = document.getElementById("chat");
  if (!root || !window.WebSocket) return;

  var threadId = root.dataset.threadId;
  var maxBytes = parseInt(root.dataset.maxBytes, 10) || 16384;
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var stopButton = document.getElementById("stop");
  var statusBox = document.getElementById("status");
  var deleteForm = document.getElementById("delete-form");
  var noscriptRefresh = document.getElementById("pending-note");
  if (noscriptRefresh) noscriptRefresh.remove();

  var socket = null;
  var attempt = 0;
  var pingTimer = null;
  var retryTimer = null;
  var running = false;
  var bubbles = {}; // message_id -> {el, text}
  var seenUsers = {}; // message_id of user messages already shown
  var unacked = {}; // message id -> frame sent but not yet acknowledged (its "user" event)
  var cards = {}; // interrupt id -> {li, form, state: "waiting"|"sending"|"decided", run}
  var decisionsSent = {}; // decision frame id -> {frame, interrupts}: not yet answered
  var decisionOrder = []; // their ids, oldest first (an error answers the oldest)
  var threadItem = document.querySelector("#thread-list li[data-thread-id=\"" + threadId + "\"]");
  var hintBox = document.getElementById("composer-hint");
  var drawer = document.getElementById("thread-drawer");
  var TITLE_LENGTH = 60; // chat.threads.TITLE_LENGTH

  // --- formatting -----------------------------------------------------------
  function browserTimezone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function escapeHtml(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // Markdown while a reply streams (and for a reply that comes without the server's
  // "html"): the text is escaped first, then only the fixed tags below are written
  // around it, so nothing the model says can become HTML. It follows the server's
  // rendering (python-markdown with fenced_code, sane_lists and nl2br, chat/render.py),
  // so the streamed reply looks like the final one (see closeOpenMarks for "**bold" whose
  // closing mark has not arrived yet).
  var CODE_SPAN = /(`[^`\n]+`)/;
  var LINK = /(\[[^\]\n]+\]\((?:https?:\/\/|mailto:)[^\s)]+\))/;
  var LINK_PARTS = /^\[([^\]\n]+)\]\(([^\s)]+)\)$/;
  var LIST_ITEM = /^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
  var FENCE = /^ {0,3}(`{3,}|~{3,})/;
  var HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
  var SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
  var RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var QUOTE = /^ {0,3}&gt; ?(.*)$/;  // the line is escaped already

  function emphasis(s) {
    return s
      .replace(/\*\*(?=\S)([^\n]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|\W)__(?=\S)([^\n]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
      .replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![*\w])/g, "$1<em>$2</em>")
      .replace(/(^|\W)_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
  }
  function inline(s) {  // s is escaped already
    return s.split(CODE_SPAN).map(function (part, i) {
      if (i % 2 === 1) return "<code>" + part.slice(1, -1) + "</code>";
      return part.split(LINK).map(function (piece, j) {
        var link = j % 2 === 1 && LINK_PARTS.exec(piece);
        if (!link) return emphasis(piece);
        return '<a href="' + link[2] + '" rel="noopener noreferrer nofollow">' +
          emphasis(link[1]) + "</a>";
      }).join("");
    }).join("");
  }
  function listKind(marker) {
    return /\d/.test(marker) ? "ol" : "ul";
  }
  function withBreaks(lines) {  // nl2br: a newline in a paragraph is a line break
    return lines.map(inline).join("<br>\n");
  }
  function renderBlocks(lines) {  // lines: escaped
    var out = [];
    var para = [];
    var list = null;  // {kind: "ul"|"ol", items: [[line, ...], ...]}
    var quote = [];
    function flush() {
      if (para.length) out.push("<p>" + withBreaks(para) + "</p>");
      if (list) {
        out.push("<" + list.kind + ">" + list.items.map(function (item) {
          return "<li>" + withBreaks(item) + "</li>";
        }).join("") + "</" + list.kind + ">");
      }
      if (quote.length) out.push("<blockquote>" + renderBlocks(quote) + "</blockquote>");
      para = []; list = null; quote = [];
    }
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      var fence = FENCE.exec(line);
      if (fence) {
        flush();
        var code = [];
        for (i += 1; i < lines.length && lines[i].trim().indexOf(fence[1]) !== 0; i++) {
          code.push(lines[i]);
        }  // the closing fence is skipped; a reply still streaming may not have it yet
        out.push("<pre><code>" + code.join("\n") + (code.length ? "\n" : "") + "</code></pre>");
        continue;
      }
      if (!line.trim()) {  // a blank line ends a block, but a list goes on to its next item
        var next = lines.slice(i + 1).filter(function (l) { return l.trim(); })[0];
        var item = next !== undefined && LIST_ITEM.exec(next);
        if (!(list && item && listKind(item[1]) === list.kind)) flush();
        continue;
      }
      var quoted = QUOTE.exec(line);
      if (quoted && (quote.length || (!para.length && !list))) { quote.push(quoted[1]); continue; }
      if (quote.length) flush();
      var heading = HEADING.exec(line);
      if (heading) {
        flush();
        var n = heading[1].length;
        out.push("<h" + n + ">" + inline(heading[2]) + "</h" + n + ">");
        continue;
      }
      var setext = para.length === 1 && SETEXT.exec(line);
      if (setext) {
        var level = setext[1].charAt(0) === "=" ? 1 : 2;
        out.push("<h" + level + ">" + inline(para[0]) + "</h" + level + ">");
        para = [];
        continue;
      }
      if (!para.length && RULE.test(line)) { flush(); out.push("<hr>"); continue; }
      var listed = LIST_ITEM.exec(line);
      if (listed && !para.length) {
        if (list && listKind(listed[1]) !== list.kind) flush();
        if (!list) list = {kind: listKind(listed[1]), items: []};
        list.items.push([listed[2]]);
        continue;
      }
      if (list) { list.items[list.items.length - 1].push(line.trim()); continue; }
      para.push(line);
    }
    flush();
    return out.join("\n");
  }
  function formatMarkdown(text) {
    return renderBlocks(escapeHtml(text || "").replace(/\r\n?/g, "\n").split("\n"));
  }
  function closeOpenMarks(text) {
    // While a reply streams, a "**bold" or "`code" of its last line is shown as such
    // before its closing mark arrives (not in a code block still being written).
    if ((text.match(/^ {0,3}(```|~~~)/gm) || []).length % 2) return text;
    var line = text.slice(text.lastIndexOf("\n") + 1);
    var close = "";
    if ((line.match(/`/g) || []).length % 2) {
      if (/`\S/.test(line.slice(line.lastIndexOf("`")))) close = "`";
    } else {
      var outside = line.replace(/`[^`]*`/g, "");
      if ((outside.match(/\*\*/g) || []).length % 2 &&
          /\*\*\S/.test(outside.slice(outside.lastIndexOf("**")))) close = "**";
    }
    if (!close) return text;
    var space = /\s*$/.exec(text)[0];
    return text.slice(0, text.length - space.length) + close + space;
  }
  function showReply(body, text, html) {
    // The server's rendering (sanitised by nh3, chat/render.py) when the event has it.
    body.innerHTML = typeof html === "string" && html ? html : formatMarkdown(text);
  }

  // --- rendering -------------------------------------------------------------
  function clearHint() {
    var hint = document.getElementById("empty-hint");
    if (hint) hint.remove();
  }
  function addMessage(role, text, opts) {
    clearHint();
    var li = document.createElement("li");
    li.className = "msg " + role;
    var body = document.createElement("div");
    body.className = "body" + (role === "assistant" ? " markdown" : "");
    if (opts && opts.markdown) showReply(body, text, opts.html);
    else body.textContent = text;
    li.appendChild(body);
    list.appendChild(li);
    li.scrollIntoView({block: "end"});
    return li;
  }
  function toolLine(name, output, html) {
    var li = addMessage("tool", "");
    if (html) {  // rendered (and escaped) by the server's template: chat/_tool_result.html
      li.firstChild.className = "body result-card";
      li.firstChild.innerHTML = html;
      return li;
    }
    var body = li.firstChild;
    body.className = "body tool";
    body.appendChild(document.createTextNode("Tool "));
    var code = document.createElement("code");
    code.textContent = name || "tool";
    body.appendChild(code);
    body.appendChild(document.createTextNode(": " + (output || "")));
    return li;
  }
  function bubbleFor(id) {
    var b = bubbles[id];
    if (!b) {
      var li = addMessage("assistant", "");
      li.classList.add("streaming");
      // The reply goes above the approval cards its own run put up.
      var firstCard = firstCardOf(id);
      if (firstCard) list.insertBefore(li, firstCard);
      b = bubbles[id] = {el: li, text: ""};
    }
    return b;
  }
  function markStopped(li) {
    // A reply the user stopped: what it said so far is kept, marked "Stopped".
    li.classList.remove("streaming");
    li.classList.add("stopped");
    if (li.querySelector(".stopped-mark")) return;
    var mark = document.createElement("span");
    mark.className = "stopped-mark";
    mark.title = "You stopped this reply; what it said so far is kept.";
    mark.textContent = "Stopped";
    li.appendChild(mark);
  }
  function titleThread(text) {
    // The thread list names a chat by its first message (chat.threads.shorten_title):
    // a new chat gets its name as soon as that message is sent.
    if (!threadItem || !threadItem.hasAttribute("data-untitled")) return;
    var chars = Array.from((text || "").split(/\s+/).filter(Boolean).join(" "));
    if (!chars.length) return;
    var title = chars.length <= TITLE_LENGTH ? chars.join("") : chars.slice(0, TITLE_LENGTH - 1).join("") + "\u2026";
    var label = threadItem.querySelector(".thread-title");
    if (label) label.textContent = title;
    threadItem.removeAttribute("data-untitled");
    document.title = (chars.length <= 50 ? chars.join("") : chars.slice(0, 49).join("") + "\u2026") + " \u00b7 AgenticPal";
  }
  function showHint(text) {
    if (!hintBox) return;
    hintBox.textContent = text || "";
    hintBox.hidden = !text;
  }

  // --- approval cards -----------------------------------------------------------
  var DECIDED = {
    approve: "Approved \u2014 running\u2026",
    edit: "Edited \u2014 running\u2026",
    reject: "Rejected",
    gone: "No longer waiting"
  };
  var RUNNING_SUFFIX = " \u2014 running\u2026";

  function csrfToken() {
    var field = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (field && field.value) return field.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function firstCardOf(messageId) {
    var items = list.querySelectorAll("li.msg.approval");
    for (var i = 0; i < items.length; i++) {
      if (items[i].dataset.messageId === messageId) return items[i];
    }
    return null;
  }
  function registerCard(li) {
    var cardForm = li.querySelector("form.approval");
    var interruptId = cardForm && cardForm.dataset.interruptId;
    if (!interruptId) return null;
    var token = cardForm.querySelector("[data-csrf]");
    if (token && !token.value) token.value = csrfToken();  // cards sent as events have none
    li.dataset.interruptId = interruptId;
    cards[interruptId] = {li: li, form: cardForm, state: "waiting", run: null};
    return cards[interruptId];
  }
  function addCard(interruptId, html, messageId) {
    if (!interruptId || !html || cards[interruptId]) return;  // shown already (history + live)
    clearHint();
    var li = document.createElement("li");
    li.className = "msg approval";
    if (messageId) li.dataset.messageId = messageId;
    var body = document.createElement("div");
    body.className = "body approval-card";
    body.innerHTML = html;  // rendered (and escaped) by the server's template: chat/_approval.html
    li.appendChild(body);
    list.appendChild(li);
    if (!registerCard(li)) { li.remove(); return; }
    li.scrollIntoView({block: "end"});
  }
  function markCard(card, state, text, note) {
    card.state = state;
    card.li.classList.toggle("sending", state === "sending");
    card.li.classList.toggle("decided", state === "decided");
    card.form.querySelectorAll("button, input, textarea, select").forEach(function (el) {
      if (el.type === "hidden" || el.hidden) return;  // the default button stays disabled
      el.disabled = state !== "waiting";
    });
    var line = card.form.querySelector(".approval-state");
    if (!line) {
      line = document.createElement("p");
      line.className = "approval-state";
      line.setAttribute("role", "status");
      card.form.appendChild(line);
    }
    line.textContent = text || "";
    if (note) {
      var small = document.createElement("span");
      small.className = "approval-note";
      small.textContent = note;
      if (text) line.appendChild(document.createTextNode(" "));
      line.appendChild(small);
    }
    line.classList.toggle("error", state === "waiting" && !!note);
    line.hidden = !text && !note;
    if (state === "decided") {
      var edit = card.form.querySelector("details.approval-edit");
      if (edit) edit.open = false;
    }
  }
  function anyCardWaiting() {
    return Object.keys(cards).some(function (id) { return cards[id].state !== "decided"; });
  }
  function decisionFrom(cardForm, choice) {
    if (choice === "reject") {
      var reason = cardForm.querySelector("input[name=message]");
      return {type: "reject", message: reason ? reason.value.trim() : ""};
    }
    if (choice !== "edit") return {type: "approve"};
    var args = {};
    cardForm.querySelectorAll("label[data-kind]").forEach(function (label) {
      var field = label.querySelector("[name^=\"arg_\"]");
      if (!field) return;
      var name = field.name.slice(4);
      var kind = label.dataset.kind;
      if (kind === "checkbox") { args[name] = field.checked; return; }
      var value = field.value;
      if (!value.trim() && (label.hasAttribute("data-optional") || kind === "number")) return;
      if (kind === "list") {
        args[name] = value.split(",").map(function (v) { return v.trim(); })
          .filter(function (v) { return v; });
      } else if (kind === "number") {
        var n = parseInt(value, 10);
        args[name] = isNaN(n) ? value : n;  // not a number: the schema says what is wrong
      } else {
        args[name] = value;
      }
    });
    return {type: "edit", args: args};
  }
  function sendDecision(frame, interrupts) {
    if (!send(frame)) return false;
    if (!decisionsSent[frame.id]) decisionOrder.push(frame.id);
    decisionsSent[frame.id] = {frame: frame, interrupts: interrupts};
    interrupts.forEach(function (id) {
      if (cards[id] && cards[id].state !== "decided") markCard(cards[id], "sending", "Sending\u2026");
    });
    return true;
  }
  function settleDecision(id) {
    if (!decisionsSent[id]) return null;
    var entry = decisionsSent[id];
    delete decisionsSent[id];
    decisionOrder = decisionOrder.filter(function (x) { return x !== id; });
    return entry;
  }
  function refusedDecision(ev) {
    // The server refused a decision frame (the error carries a code, not the frame's
    // id): frames are answered in order, so it is the oldest one not answered yet.
    var entry = decisionOrder.length ? settleDecision(decisionOrder[0]) : null;
    if (!entry) return false;
    entry.interrupts.forEach(function (id) {
      var card = cards[id];
      if (!card || card.state === "decided") return;
      if (ev.code === "DecisionGone") markCard(card, "decided", DECIDED.gone, ev.reason);
      else markCard(card, "waiting", "", ev.reason);  // the card can be answered again
    });
    return true;
  }
  function resendDecisions(waiting) {
    // After a reconnect: decisions never answered are sent again if their card waits.
    decisionOrder.slice().forEach(function (id) {
      var entry = settleDecision(id);
      var still = entry.interrupts.filter(function (i) { return waiting[i]; });
      if (still.length) sendDecision(entry.frame, still);
    });
  }
  function setThreadStatus(status) {
    if (!threadItem || threadItem.dataset.status === status) return;
    threadItem.dataset.status = status;
    var link = threadItem.querySelector("a");
    var badge = link && link.querySelector(".thread-badge");
    var label = {awaiting_approval: "Needs approval", running: "Running", error: "Error"}[status];
    if (!label) { if (badge) badge.remove(); return; }
    if (!badge && link) {
      badge = document.createElement("span");
      link.appendChild(badge);
    }
    if (badge) { badge.className = "thread-badge " + status; badge.textContent = label; }
  }
  function idleStatus() {
    return anyCardWaiting() ? "awaiting_approval" : "idle";
  }

  function renderHistory(messages, approvals) {
    list.textContent = "";
    bubbles = {};
    cards = {};
    if (!messages.length) {
      var hint = document.createElement("li");
      hint.className = "msg hint";
      hint.id = "empty-hint";
      hint.textContent = "Ask anything to start. Try \u201cwhat\u2019s on my calendar tomorrow?\u201d, \u201cshow my unread emails\u201d or \u201cwhat tasks are due this week?\u201d.";
      list.appendChild(hint);
    }
    messages.forEach(function (m) {
      if (m.role === "tool") { toolLine(m.name, m.content, m.html); return; }
      var li = addMessage(m.role, m.content, {markdown: m.role === "assistant", html: m.html});
      if (m.stopped) markStopped(li);
      if (m.role === "user") titleThread(m.content);
    });
    (approvals || []).forEach(function (a) {
      addCard(a.interrupt_id, a.html);
      if (a.decided && cards[a.interrupt_id]) {  // the decision is queued: about to run
        markCard(cards[a.interrupt_id], "decided", DECIDED[a.decided] || "Decided");
      }
    });
  }
  function setRunning(on) {
    running = on;
    root.classList.toggle("running", on);
    stopButton.disabled = !on;
  }
  function showStatus(text, kind) {
    if (!text) { statusBox.hidden = true; statusBox.textContent = ""; return; }
    statusBox.hidden = false;
    statusBox.className = "status " + (kind || "");
    statusBox.textContent = text;
  }

  // --- events from the server ------------------------------------------------
  // The server ran a message: it has it, even if its "user" event was missed (a socket
  // re-subscribing after Redis restarted gets it only from the next ping's catch-up).
  var RAN = { token: 1, tool: 1, approval: 1, done: 1, cancelled: 1 };
  function onEvent(ev) {
    if (RAN[ev.type] && ev.message_id) acknowledge(ev.message_id);
    switch (ev.type) {
      case "history":
        renderHistory(ev.messages || [], ev.approvals || []);
        seenUsers = {};
        resendDecisions(cards);
        if (anyCardWaiting()) setThreadStatus("awaiting_approval");
        else if (threadItem && threadItem.dataset.status === "awaiting_approval") setThreadStatus("idle");
        break;
      case "user":
        acknowledge(ev.message_id);
        if (seenUsers[ev.message_id]) {
          // The same message run again (Redis failed mid-run): its reply starts over.
          var again = bubbles[ev.message_id];
          if (again) { again.text = ""; again.el.firstChild.textContent = ""; again.el.classList.add("streaming"); }
          setRunning(true);
          break;
        }
        seenUsers[ev.message_id] = true;
        addMessage("user", ev.text);
        titleThread(ev.text);
        setRunning(true);
        setThreadStatus("running");
        break;
      case "token":
        var b = bubbleFor(ev.message_id);
        b.text += ev.text;
        showReply(b.el.firstChild, closeOpenMarks(b.text));  // Markdown as it streams
        setRunning(true);
        break;
      case "tool":
        toolLine(ev.name, ev.output, ev.html);
        break;
      case "approval":
        addCard(ev.interrupt_id, ev.html, ev.message_id);
        break;
      case "decided":
        settleDecision(ev.message_id);
        var decided = cards[ev.interrupt_id];
        if (decided && decided.state !== "decided") {
          markCard(decided, "decided", DECIDED[ev.decision] || "Decided", ev.reason);
          decided.run = ev.message_id;
        }
        if (ev.decision !== "gone") { setRunning(true); setThreadStatus("running"); }
        break;
      case "done":
        Object.keys(cards).forEach(function (id) {  // "Approved — running…" is over
          var card = cards[id];
          var line = card.run === ev.message_id && card.form.querySelector(".approval-state");
          if (line && line.firstChild && line.firstChild.nodeType === 3) {
            line.firstChild.textContent = line.firstChild.textContent.replace(RUNNING_SUFFIX, "");
          }
        });
        if (bubbles[ev.message_id] || ev.content) {  // a run that only put up a card says nothing
          var d = bubbleFor(ev.message_id);
          d.el.classList.remove("streaming");
          showReply(d.el.firstChild, ev.content || d.text, ev.html);
        }
        setRunning(false);
        setThreadStatus(ev.status || idleStatus());
        break;
      case "cancelled":
        var c = bubbleFor(ev.message_id);
        var said = typeof ev.content === "string" ? ev.content : c.text;
        if (said.trim()) showReply(c.el.firstChild, said, ev.html);
        else c.el.firstChild.textContent = "";  // nothing said: only the mark shows
        markStopped(c.el);
        setRunning(false);
        setThreadStatus(idleStatus());
        break;
      case "error":
        if (ev.message_id) {
          var e = bubbleFor(ev.message_id);
          e.el.classList.remove("streaming");
          e.el.classList.add("failed");
          e.el.firstChild.textContent = (e.text ? e.text + "\n" : "") + "Error: " + ev.reason;
          setRunning(false);
          setThreadStatus("error");
        } else if (ev.code && refusedDecision(ev)) {
          // shown on the card it answers
        } else {
          showStatus(ev.reason, "error");
          setTimeout(function () { if (statusBox.classList.contains("error")) showStatus(""); }, 6000);
        }
        break;
      case "deleted":
        location.href = "/";
        break;
      case "pong":
        break;
    }
  }

  // --- the socket -------------------------------------------------------------
  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(proto + "//" + location.host + "/ws/chat/" + encodeURIComponent(threadId) + "/");
    socket.onopen = function () {
      attempt = 0;
      showStatus("");
      root.classList.add("live");
      clearInterval(pingTimer);
      // The server answers a ping only when Redis does: a dead Redis closes the socket
      // within a few seconds, and the page shows "reconnecting".
      pingTimer = setInterval(function () { send({type: "ping"}); }, 5000);
      // Messages never acknowledged are sent again; their id makes that harmless.
      Object.keys(unacked).forEach(function (id) { send(unacked[id]); });
    };
    socket.onmessage = function (msg) {
      try { onEvent(JSON.parse(msg.data)); } catch (err) { console.error(err); }
    };
    socket.onclose = function (ev) {
      root.classList.remove("live");
      clearInterval(pingTimer);
      socket = null;
      if (ev.code === 4401) { location.href = "/login/?next=" + encodeURIComponent(location.pathname); return; }
      if (ev.code === 4410) { location.href = "/"; return; }
      if (ev.code === 4403 || ev.code === 4400) { showStatus("This chat is not available.", "error"); return; }
      scheduleReconnect(ev.reason);
    };
  }
  function scheduleReconnect(reason) {
    var delay = Math.min(10000, 500 * Math.pow(2, attempt)) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    showStatus("Reconnecting\u2026" + (reason ? " (" + reason + ")" : ""), "reconnecting");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }
  function newMessageId() {
    var raw = window.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random();
    return raw.replace(/[^A-Za-z0-9]/g, "").slice(0, 32);
  }
  function acknowledge(id) {
    var frame = unacked[id];
    if (!frame) return;
    delete unacked[id];
    if (input.value === frame.message) input.value = "";  // kept until the server has it
    input.classList.remove("sending");
  }
  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  // --- the form ---------------------------------------------------------------
  form.addEventListener("submit", function (e) {
    var submitter = e.submitter;
    if (submitter === stopButton) {
      if (send({type: "cancel"})) e.preventDefault();
      return;
    }
    var text = input.value;
    if (!text.trim()) {
      e.preventDefault();
      showHint("Type a message first: an empty message is not sent.");
      input.focus();
      return;
    }
    if (new TextEncoder().encode(text).length > maxBytes) {
      e.preventDefault();
      showHint("The message is longer than 16 KB; shorten it.");
      return;
    }
    showHint("");
    if (Object.keys(unacked).length) { e.preventDefault(); return; }  // one at a time
    var frame = {type: "message", id: newMessageId(), message: text, timezone: browserTimezone()};
    if (send(frame)) {
      e.preventDefault();
      unacked[frame.id] = frame;
      input.classList.add("sending");
    } // else: the socket is down, let the browser POST the form (works without the socket)
  });
  // The approval cards' forms (one listener for all, those of the page and those to come).
  list.addEventListener("submit", function (e) {
    var cardForm = e.target;
    if (!cardForm.classList || !cardForm.classList.contains("approval")) return;
    var interruptId = cardForm.dataset.interruptId;
    var card = cards[interruptId] || registerCard(cardForm.closest("li") || cardForm);
    var choice = e.submitter && e.submitter.name === "decision" ? e.submitter.value : "";
    if (!card || !choice || card.state !== "waiting") { e.preventDefault(); return; }
    var frame = {type: "decision", id: newMessageId(), decisions: {}, timezone: browserTimezone()};
    frame.decisions[interruptId] = decisionFrom(cardForm, choice);
    if (sendDecision(frame, [interruptId])) e.preventDefault();
    // else: the socket is down, let the browser POST the form (works without the socket)
  });
  list.addEventListener("keydown", function (e) {
    // Enter in a card's text field: the reason rejects, an edited field saves the edit.
    var field = e.target;
    if (e.key !== "Enter" || e.isComposing || field.tagName !== "INPUT") return;
    var cardForm = field.form;
    if (!cardForm || !cardForm.classList.contains("approval")) return;
    e.preventDefault();
    var which = field.name === "message" ? "reject" : field.name.indexOf("arg_") === 0 ? "edit" : "";
    var button = which && cardForm.querySelector("button[name=decision][value=" + which + "]");
    if (button && !button.disabled) cardForm.requestSubmit(button);
  });
  list.querySelectorAll("li.msg.approval").forEach(registerCard);  // the page's own cards

  input.addEventListener("input", function () { if (hintBox && !hintBox.hidden) showHint(""); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit(document.getElementById("send"));
    }
  });
  if (deleteForm) {
    deleteForm.addEventListener("submit", function (e) {
      if (!confirm("Delete this chat? This cannot be undone.")) e.preventDefault();
    });
  }
  // The page checks the message itself (an empty one gets the hint above), not the
  // browser's "required" (kept for the page without JavaScript).
  form.noValidate = true;
  // On a narrow screen the thread list is a drawer above the chat: closed on a chat page.
  if (drawer && window.matchMedia && window.matchMedia("(max-width: 720px)").matches) {
    drawer.open = false;
  }
  setRunning(false);
  connect();
})();
