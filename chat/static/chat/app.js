// AgenticPal chat page: websocket streaming on top of a page that works without JS.
// Streamed text is inserted as text; a finished reply is escaped first, then given a
// little Markdown formatting, so nothing the model says can become HTML.
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
  function inline(s) {
    return s
      .replace(/`([^`\n]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<em>$2</em>")
      .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g,
        '<a href="$2" rel="noopener noreferrer nofollow">$1</a>');
  }
  function formatMarkdown(text) {
    var parts = escapeHtml(text).split(/```[^\n]*\n?/);
    return parts.map(function (part, i) {
      if (i % 2 === 1) return "<pre><code>" + part + "</code></pre>";
      return part.split(/\n{2,}/).filter(function (p) { return p.trim(); }).map(function (p) {
        return "<p>" + inline(p).replace(/\n/g, "<br>") + "</p>";
      }).join("");
    }).join("");
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
    if (opts && opts.html) body.innerHTML = formatMarkdown(text);
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
      b = bubbles[id] = {el: li, text: ""};
    }
    return b;
  }
  function renderHistory(messages) {
    list.textContent = "";
    bubbles = {};
    if (!messages.length) {
      var hint = document.createElement("li");
      hint.className = "msg hint";
      hint.id = "empty-hint";
      hint.textContent = "Ask anything to start. Try \u201cwhat\u2019s on my calendar tomorrow?\u201d, \u201cshow my unread emails\u201d or \u201cwhat tasks are due this week?\u201d.";
      list.appendChild(hint);
    }
    messages.forEach(function (m) {
      if (m.role === "tool") toolLine(m.name, m.content, m.html);
      else addMessage(m.role, m.content, {html: m.role === "assistant"});
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
  function onEvent(ev) {
    switch (ev.type) {
      case "history":
        renderHistory(ev.messages || []);
        seenUsers = {};
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
        setRunning(true);
        break;
      case "token":
        var b = bubbleFor(ev.message_id);
        b.text += ev.text;
        b.el.firstChild.textContent = b.text;
        setRunning(true);
        break;
      case "tool":
        toolLine(ev.name, ev.output, ev.html);
        break;
      case "done":
        var d = bubbleFor(ev.message_id);
        d.el.classList.remove("streaming");
        d.el.firstChild.innerHTML = formatMarkdown(ev.content || d.text);
        setRunning(false);
        break;
      case "cancelled":
        var c = bubbleFor(ev.message_id);
        c.el.classList.remove("streaming");
        c.el.classList.add("stopped");
        if (!c.text) c.el.firstChild.textContent = "(stopped)";
        setRunning(false);
        break;
      case "error":
        if (ev.message_id) {
          var e = bubbleFor(ev.message_id);
          e.el.classList.remove("streaming");
          e.el.classList.add("failed");
          e.el.firstChild.textContent = (e.text ? e.text + "\n" : "") + "Error: " + ev.reason;
          setRunning(false);
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
    if (!text.trim()) { e.preventDefault(); return; }
    if (new TextEncoder().encode(text).length > maxBytes) {
      e.preventDefault();
      showStatus("The message is longer than 16 KB; shorten it.", "error");
      return;
    }
    if (Object.keys(unacked).length) { e.preventDefault(); return; }  // one at a time
    var frame = {type: "message", id: newMessageId(), message: text, timezone: browserTimezone()};
    if (send(frame)) {
      e.preventDefault();
      unacked[frame.id] = frame;
      input.classList.add("sending");
    } // else: the socket is down, let the browser POST the form (works without the socket)
  });
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
  setRunning(false);
  connect();
})();
