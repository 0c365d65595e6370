// A button with data-print prints the page (no inline handler: the pages' CSP allows none).
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-print]") : null;
  if (button) { window.print(); }
});
