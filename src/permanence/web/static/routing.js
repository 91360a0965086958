// Permanence: the operator's presence and the screen pop that follows the queue.
// Polls /console/routage/etat every two seconds; when a call from the queue is connected to
// this operator, their console opens that call's screen by itself. No personal data here:
// the state, durations and a link.
"use strict";
// The console's pages are swapped in by htmx (hx-boost) without running their scripts again:
// the elements are looked up on each poll, so one poller serves every page of the console.
(function () {
  if (window.permanenceRouting || !window.fetch) { return; }
  window.permanenceRouting = true;
  var box, out, buttons;
  function label(name) { return box.getAttribute("data-l-" + name) || name; }
  function duration(s) {
    var m = Math.floor(s / 60);
    return m > 0 ? m + " min " + (s % 60) + " s" : s + " s";
  }
  function show(st) {
    var text = label(st.state) + " (" + label("since") + " " + duration(st.since_s) + ")";
    if (st.state === "wrap_up" && st.wrap_up_left_s !== null) {
      text += " — " + label("left") + " " + duration(st.wrap_up_left_s);
    }
    if (st.ringing) { text += " — " + label("ringing"); }
    if (st.queue && !st.device) { text += " — " + label("nodevice"); }
    out.textContent = text;
    out.classList.remove("muted");
    box.setAttribute("data-state", st.state);
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", buttons[i].value === st.state ? "true" : "false");
    }
    if (st.pop && window.location.pathname !== st.pop) {
      window.location.assign(st.pop);  // the screen pop of the call this operator answered
    }
  }
  var stopped = false;
  function poll() {
    if (stopped) { return; }
    box = document.getElementById("presence");
    if (!box) { window.setTimeout(poll, 2000); return; }  // a console page without the box
    out = document.getElementById("presence-etat");
    buttons = box.querySelectorAll("button[name=etat]");
    fetch(box.getAttribute("data-etat"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { stopped = true; return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (st) { if (st) { show(st); } })
      .catch(function () {})
      .then(function () { if (!stopped) { window.setTimeout(poll, 2000); } });
  }
  window.addEventListener("pagehide", function () { stopped = true; });
  poll();
})();
