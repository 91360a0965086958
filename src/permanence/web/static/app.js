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

  // After a refused form, bring the first problem into view and focus.
  var firstInvalid = document.querySelector('[aria-invalid="true"]');
  var problems = document.getElementById("problemes");
  if (firstInvalid) { firstInvalid.focus(); } else if (problems) { problems.focus(); }
})();
