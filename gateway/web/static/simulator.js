// The phone simulator: the server plays Twilio's part; this page is the phone's screen and keys.
(function () {
  "use strict";
  var W = JSON.parse(document.getElementById("sim-words").textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var $ = function (id) { return document.getElementById(id); };
  var base = $("sim").getAttribute("data-base");
  var screen = $("screen"), person = $("person"), other = $("other");
  var state = { sid: null, from: null, wait: null, digits: "", busy: false };

  function phone() {
    return person.value === "other" ? other.value.trim() : person.value;
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { throw new Error(j.error || String(r.status)); }
        return j;
      });
    });
  }

  function line(text, cls) {
    var p = document.createElement("p");
    p.className = cls || "";
    p.textContent = text;
    screen.appendChild(p);
    screen.scrollTop = screen.scrollHeight;
    return p;
  }

  function buttons() {
    var inCall = !!state.sid;
    $("call").hidden = inCall;
    $("hangup").hidden = !inCall;
    $("record").hidden = !(state.wait && state.wait.kind === "record");
    $("silence").hidden = !(state.wait && state.wait.on_silence);
    document.querySelectorAll(".key").forEach(function (k) {
      k.disabled = state.busy || (inCall && !(state.wait && state.wait.kind === "gather"));
    });
  }

  function show(turn) {
    (turn.said || []).forEach(function (s) {
      if (s.kind === "play") {
        var p = line(W.plays, "said");
        var audio = document.createElement("audio");
        audio.controls = true; audio.src = s.url; audio.preload = "none";
        p.appendChild(audio);
      } else if (s.text) {
        line(s.text, "said");
      }
    });
    state.wait = turn.wait;
    state.digits = "";
    if (turn.wait && turn.wait.kind === "gather") { line(W.press_key, "hint"); }
    if (turn.wait && turn.wait.kind === "record") { line(W.speak_now, "hint"); }
    if (turn.ended) { end(false); }
    buttons();
  }

  function fail(err) {
    line(W.error + " " + err.message, "error");
    state.busy = false;
    buttons();
  }

  function run(promise) {
    state.busy = true; buttons();
    return promise.then(function (turn) { state.busy = false; show(turn); refreshInbox(); })
      .catch(fail);
  }

  function step(data) {
    data.sid = state.sid; data.from = state.from;
    return run(post(base + "/call/step", data));
  }

  function end(byCaller) {
    var sid = state.sid, from = state.from;
    state.sid = null; state.wait = null;
    line(byCaller ? W.hung_up : W.ended, "hint");
    buttons();
    if (sid) {
      post(base + "/call/hangup", { sid: sid, from: from })
        .then(refreshInbox).catch(function () {});
    }
  }

  $("call").addEventListener("click", function () {
    var from = phone();
    if (!from) { line(W.need_number, "error"); return; }
    screen.textContent = "";
    line(W.calling, "hint");
    state.from = from;
    state.busy = true; buttons();
    post(base + "/call", { from: from }).then(function (turn) {
      state.sid = turn.sid; state.from = turn.from; state.busy = false;
      show(turn);
    }).catch(fail);
  });

  $("hangup").addEventListener("click", function () { end(true); });

  document.querySelectorAll(".key").forEach(function (k) {
    k.addEventListener("click", function () {
      var key = k.getAttribute("data-key");
      if (!state.sid || !state.wait || state.wait.kind !== "gather") { return; }
      line(W.pressed + " " + key, "pressed");
      var w = state.wait;
      if (w.finish_on_key && key === w.finish_on_key) {
        step({ kind: "key", url: w.action, digits: state.digits });
        return;
      }
      state.digits += key;
      if (w.num_digits && state.digits.length >= w.num_digits) {
        step({ kind: "key", url: w.action, digits: state.digits });
      }
    });
  });

  $("record").addEventListener("click", function () {
    if (!state.wait) { return; }
    line(W.recorded, "pressed");
    step({ kind: "record", url: state.wait.action, callback: state.wait.callback });
  });

  $("silence").addEventListener("click", function () {
    if (!state.wait || !state.wait.on_silence) { return; }
    line(W.silent, "pressed");
    step({ kind: "silence", url: state.wait.on_silence });
  });

  $("sms-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = $("sms-body").value.trim();
    var from = phone();
    if (!body || !from) { return; }
    $("sms-send").disabled = true;
    post(base + "/sms", { from: from, body: body }).then(function () {
      $("sms-body").value = "";
      refreshInbox();
    }).catch(function (err) { line(W.error + " " + err.message, "error"); })
      .then(function () { $("sms-send").disabled = false; });
  });

  function refreshInbox() {
    var from = phone();
    if (!from) { return; }
    fetch(base + "/inbox?phone=" + encodeURIComponent(from),
          { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        $("inbox-number").textContent = data.phone;
        var list = $("inbox");
        list.textContent = "";
        if (!data.messages.length) {
          var empty = document.createElement("li");
          empty.className = "muted"; empty.textContent = W.inbox_empty;
          list.appendChild(empty);
        }
        data.messages.forEach(function (m) {
          var li = document.createElement("li");
          li.className = m.dir;
          var meta = document.createElement("small");
          meta.textContent = m.when + " · " + (m.dir === "sent" ? W.sent : W.got) +
            (m.status ? " · " + (W.status[m.status] || m.status) : "");
          var body = document.createElement("div");
          body.textContent = m.body;
          li.appendChild(meta); li.appendChild(body);
          list.appendChild(li);
        });
      }).catch(function () {});
  }

  person.addEventListener("change", function () {
    $("other-wrap").hidden = person.value !== "other";
    refreshInbox();
  });
  other.addEventListener("change", refreshInbox);
  buttons();
  refreshInbox();
  window.setInterval(refreshInbox, 2000);
})();
