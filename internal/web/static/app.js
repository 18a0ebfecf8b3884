// mailbrake admin UI: small enhancements. Every flow also works without
// this file (plain forms, POST and redirect); the CSP allows no inline
// script, so all behaviour lives here.
(function () {
  "use strict";

  // htmx requests carry the session's CSRF token as a header too (forms
  // also carry it as a field).
  document.addEventListener("htmx:configRequest", function (e) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m && m.content) {
      e.detail.headers["X-CSRF-Token"] = m.content;
    }
  });

  // data-confirm on a form or its submit button asks first. Capture phase,
  // so a refusal also stops htmx from sending.
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    var msg = (b && b.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  function boxes(form) {
    return document.querySelectorAll('input[type="checkbox"][name="id"][form="' + form + '"]');
  }

  function count() {
    document.querySelectorAll("[data-selected-count]").forEach(function (el) {
      var n = 0;
      boxes("bulk").forEach(function (c) { if (c.checked) { n++; } });
      el.textContent = n ? n + " selected" : "";
    });
  }

  // Bulk selection: "select all" and a running count.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("input[data-select-all]")) {
      var form = t.getAttribute("data-select-all");
      boxes(form).forEach(function (c) { c.checked = t.checked; });
    }
    count();
  });
  document.addEventListener("htmx:afterSwap", count);

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-select-all]").forEach(function (el) { el.hidden = false; });
    count();
  });
})();
