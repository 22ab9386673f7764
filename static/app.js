// Small enhancements; every page works without this file.
(function () {
  "use strict";
  // Confirm buttons that carry data-confirm (withdraw, return) before their form is sent.
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-confirm]") : null;
    if (el && !window.confirm(el.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  });
  // Print buttons.
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-print]") : null;
    if (el) {
      e.preventDefault();
      window.print();
    }
  });
  // Show the size of chosen files next to a file input, and warn when one is too large.
  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input || input.type !== "file" || !input.files) return;
    var max = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
    var out = document.getElementById(input.getAttribute("data-summary") || "");
    if (!out) return;
    var parts = [];
    var tooLarge = false;
    for (var i = 0; i < input.files.length; i++) {
      var f = input.files[i];
      parts.push(f.name + " (" + Math.ceil(f.size / 1024) + " KB)");
      if (max && f.size > max) tooLarge = true;
    }
    out.textContent = parts.join("; ");
    out.className = tooLarge ? "field-error" : "muted";
    if (tooLarge) out.textContent += " — " + (input.getAttribute("data-too-large") || "too large");
  });
})();
