// Permanence: small progressive enhancements. Every page works without this file.
"use strict";
(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  // htmx sends the CSRF token as a header on every request it makes.
  // The page's own token first: after signing in again on a boosted page, the <head> (not
  // swapped) still holds the old session's.
  document.addEventListener("htmx:configRequest", function (e) {
    var field = document.querySelector('main input[name="csrf_token"]');
    var token = field ? field.value : (meta ? meta.content : "");
    if (token) { e.detail.headers["X-CSRF-Token"] = token; }
  });

  // The live queue: server-sent events carry the rendered list whenever it changes. The
  // stream outlives boosted page changes (htmx swaps the body, not the window), so the queue
  // stays live on every console page, the screen pop included.
  var source = null;
  var known = null;  // the call ids already seen (null: nothing rendered yet)
  var baseTitle = document.title;
  var icon = document.querySelector('link[rel="icon"]');
  var SOUND_KEY = "permanence.console.sound";

  function queueBox() { return document.getElementById("file-attente"); }

  function callIds(box) {
    var ids = [];
    box.querySelectorAll("[data-call]").forEach(function (li) { ids.push(li.getAttribute("data-call")); });
    return ids;
  }

  // Each waiting call's time counts up, from the seconds it had waited when rendered.
  function stampClocks(box) {
    var now = Date.now();
    box.querySelectorAll("[data-waited]").forEach(function (el) {
      if (!el.hasAttribute("data-since")) {
        el.setAttribute("data-since", String(now - parseInt(el.getAttribute("data-waited"), 10) * 1000));
      }
    });
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var s = Math.max(0, Math.floor((now - parseInt(el.getAttribute("data-since"), 10)) / 1000));
      var text = Math.floor(s / 60) + " min " + ("0" + (s % 60)).slice(-2) + " s";
      if (el.textContent !== text) { el.textContent = text; }
    });
  }
  window.setInterval(tick, 1000);

  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }
  function beep() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || !soundOn()) { return; }
    try {
      var ctx = new Ctx(), osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.18);
      osc.onended = function () { ctx.close(); };
    } catch (e) { /* no audio device: the title and the icon still say it */ }
  }

  // The title and the tab's icon say how many calls wait; a new one also beeps (optional).
  function signal(count, fresh) {
    var title = document.title.replace(/^\(\d+\) /, "");
    baseTitle = title;
    document.title = count > 0 ? "(" + count + ") " + title : title;
    if (icon) { icon.setAttribute("href", count > 0 ? "/static/favicon-alert.svg" : "/static/favicon.svg"); }
    document.documentElement.setAttribute("data-waiting", String(count));
    if (fresh) { beep(); }
  }

  function render(box, html) {
    var focusedInQueue = box.contains(document.activeElement);
    if (html !== null) {
      box.innerHTML = html;  // our own server-rendered, escaped HTML
      if (window.htmx) { window.htmx.process(box); }  // its forms are boosted too
    }
    var ids = callIds(box);
    var fresh = false;
    if (known !== null) {
      ids.forEach(function (id) {
        if (known.indexOf(id) < 0) {
          fresh = true;
          var li = box.querySelector('[data-call="' + id + '"]');
          if (li) { li.classList.add("new"); }
        }
      });
    }
    known = ids;
    stampClocks(box);
    tick();
    signal(ids.length, fresh);
    if (focusedInQueue && html !== null) {
      var first = box.querySelector("button");
      if (first) { first.focus(); }
    }
  }

  function startQueue() {
    var box = queueBox();
    if (!box) { return; }
    render(box, null);
    var toggle = document.querySelector("[data-sound-toggle]");
    if (toggle) {
      toggle.closest(".sound").hidden = false;
      toggle.checked = soundOn();
      toggle.addEventListener("change", function () {
        try { window.localStorage.setItem(SOUND_KEY, toggle.checked ? "on" : "off"); } catch (e) { /* private mode */ }
      });
    }
    if (source || !window.EventSource) { return; }
    source = new EventSource(box.getAttribute("data-flux"));
    source.addEventListener("queue", function (e) {
      var current = queueBox();
      if (current) { render(current, e.data); }
    });
    source.addEventListener("signed-out", function () {
      source.close();
      source = null;
      // A form being typed is kept: saving it offers to sign in again. Elsewhere, sign in.
      if (!document.getElementById("formulaire")) {
        window.location.assign("/connexion?suite=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
    });
    window.addEventListener("pagehide", function () { if (source) { source.close(); } });
  }

  // Boosted console pages: a refused form (4xx) and the sign-in-again page are pages too.
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.boosted && e.detail.xhr && e.detail.xhr.status >= 400) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.detail.boosted || e.target === document.body) { afterPage(true); }
  });

  // The live board reloads itself every data-refresh seconds (a meta refresh is flagged by
  // accessibility checkers; browsers without JavaScript get one inside <noscript>).
  var board = document.querySelector("[data-refresh]");
  if (board) {
    var seconds = parseInt(board.getAttribute("data-refresh"), 10);
    if (seconds > 0) {
      window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }
  }

  // Keyboard shortcuts: Alt + a key activates the control that declares it in
  // aria-keyshortcuts (announced by screen readers). The physical key is used, so Alt+1 works
  // on every layout (AZERTY included) and on a Mac, where Alt types special characters.
  // A key pressed while htmx is still swapping or settling a page waits for the new page: its
  // links and forms are boosted only once it has settled, and a click before that would load
  // the whole page instead (a fast operator's Alt+Q then Alt+1).
  var pendingKey = null;
  function busy() { return document.querySelector(".htmx-swapping, .htmx-settling") !== null; }
  function shortcut(key) {
    var target = document.querySelector('[aria-keyshortcuts="Alt+' + key + '"]');
    if (target) {
      target.focus();
      target.click();
    }
    return target !== null;
  }
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    var m = /^(?:Digit|Key)([0-9A-Z])$/.exec(e.code || "");
    if (!m) { return; }
    if (busy()) {
      e.preventDefault();
      pendingKey = m[1];
      return;
    }
    if (document.querySelector('[aria-keyshortcuts="Alt+' + m[1] + '"]')) {
      e.preventDefault();
      shortcut(m[1]);
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (pendingKey !== null) {
      var key = pendingKey;
      pendingKey = null;
      window.setTimeout(function () { shortcut(key); }, 0);
    }
  });

  // After a page (or a boosted swap): the first problem, else the field the page asks for
  // (the first empty field of the purpose just picked), else the main content.
  function afterPage(swapped) {
    startQueue();
    if (swapped && queueBox()) { signal(known ? known.length : 0, false); }
    var firstInvalid = document.querySelector('[aria-invalid="true"]');
    var problems = document.getElementById("problemes");
    var wanted = document.querySelector("main [autofocus]");
    if (firstInvalid) { firstInvalid.focus(); }
    else if (problems) { problems.setAttribute("tabindex", "-1"); problems.focus(); }
    else if (wanted) { wanted.focus(); }
    else if (swapped) { var main = document.getElementById("contenu"); if (main) { main.focus(); } }
  }
  afterPage(false);
})();
