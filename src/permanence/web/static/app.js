// Permanence: small progressive enhancements. Every page works without this file.
"use strict";
(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  // htmx sends the CSRF token as a header on every request it makes.
  document.addEventListener("htmx:configRequest", function (e) {
    if (meta) { e.detail.headers["X-CSRF-Token"] = meta.content; }
  });

  // The live queue: server-sent events carry the rendered list whenever it changes.
  var queue = document.getElementById("file-attente");
  if (queue && window.EventSource) {
    var source = new EventSource(queue.getAttribute("data-flux"));
    source.addEventListener("queue", function (e) {
      var focusedInQueue = queue.contains(document.activeElement);
      queue.innerHTML = e.data;  // our own server-rendered, escaped HTML
      if (focusedInQueue) {
        var first = queue.querySelector("button");
        if (first) { first.focus(); }
      }
    });
    source.addEventListener("signed-out", function () {
      source.close();
      window.location.assign("/connexion?suite=/console");
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

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
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    var m = /^(?:Digit|Key)([0-9A-Z])$/.exec(e.code || "");
    if (!m) { return; }
    var target = document.querySelector('[aria-keyshortcuts="Alt+' + m[1] + '"]');
    if (target) {
      e.preventDefault();
      target.focus();
      target.click();
    }
  });

  // After a refused form, bring the first problem into view and focus.
  var firstInvalid = document.querySelector('[aria-invalid="true"]');
  var problems = document.getElementById("problemes");
  if (firstInvalid) { firstInvalid.focus(); } else if (problems) { problems.focus(); }
})();
