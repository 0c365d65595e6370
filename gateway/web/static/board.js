// The board refreshes its rows every few seconds without reloading the page, keeping the filters.
(function () {
  "use strict";
  var rows = document.getElementById("board-rows");
  var form = document.querySelector("form.filters");
  if (form) {
    form.querySelectorAll("select").forEach(function (s) {
      s.addEventListener("change", function () { form.submit(); });
    });
  }
  if (!rows) { return; }
  var seconds = parseInt(rows.getAttribute("data-refresh"), 10) || 10;
  function refresh() {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) { rows.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
