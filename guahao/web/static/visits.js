// Minimal stand-in for htmx polling (hx-get + hx-trigger="every Ns", innerHTML swap): the same markup works
// unchanged if htmx itself is added later. No network libraries are vendored in this repository.
(function () {
  if (window.htmx) return;
  document.querySelectorAll("[hx-get][hx-trigger^='every']").forEach(function (el) {
    var m = /every\s+(\d+)s/.exec(el.getAttribute("hx-trigger"));
    var ms = (m ? parseInt(m[1], 10) : 5) * 1000;
    setInterval(function () {
      fetch(el.getAttribute("hx-get"), {credentials: "same-origin", headers: {"HX-Request": "true"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) el.innerHTML = html; })
        .catch(function () {});
    }, ms);
  });
})();
