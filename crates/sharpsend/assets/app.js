// SharpSend dashboard: progressive enhancement only. Every page works without this file.
// - [data-copy="input-id"] buttons copy that input's value to the clipboard.
// - [data-poll="url"] shows a sync job's live progress, then reloads when it finishes.
// - <time datetime="…"> shows the reader's local date and time (the exact UTC time stays on
//   hover, in title; without this file the page shows UTC).
"use strict";

(function () {
  function announce(button, text) {
    var previous = button.textContent;
    button.textContent = text;
    setTimeout(function () { button.textContent = previous; }, 1500);
  }

  function copyFrom(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    var value = input.value;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(
        function () { announce(button, "Copied"); },
        function () { fallback(); });
    } else {
      fallback();
    }
    function fallback() {
      input.focus();
      input.select();
      try {
        document.execCommand("copy");
        announce(button, "Copied");
      } catch (e) {
        announce(button, "Press Ctrl+C");
      }
    }
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }

  function renderCounts(list, counts) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    Object.keys(counts || {}).forEach(function (kind) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.textContent = kind;
      var n = document.createElement("strong");
      n.textContent = String(counts[kind]);
      li.appendChild(name);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(n);
      list.appendChild(li);
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-poll");
    var status = box.getAttribute("data-status");
    if (status !== "queued" && status !== "running") { return; }
    var timer = setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          if (!body || !body.success) { clearInterval(timer); return; }
          var job = body.data;
          setText("job-status", job.status);
          setText("job-pages", String(job.pages || 0));
          if (job.currentKind) { setText("job-kind", job.currentKind); }
          var list = document.getElementById("job-counts");
          if (list) { renderCounts(list, job.counts); }
          box.setAttribute("data-status", job.status);
          if (job.status !== "queued" && job.status !== "running") {
            clearInterval(timer);
            // The history and the tables change too: show them fresh.
            window.location.reload();
          }
        })
        .catch(function () { clearInterval(timer); });
    }, 1000);
  }

  function localTime(el) {
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime())) { return; }
    el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copyFrom(button); });
    });
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("time[datetime]").forEach(localTime);
  });
})();
