// Enhancements only: every page works without this file.
(function () {
  // Live countdown to a release instant (the server already printed the remaining time).
  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.max(0, Math.floor((new Date(el.dataset.countdown) - Date.now()) / 1000));
      if (left === 0) { el.textContent = "已放号，刷新页面预约"; return; }
      var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600),
          m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = "距放号 " + (d ? d + "天" : "") + h + "小时" + String(m).padStart(2, "0") + "分" +
        String(s).padStart(2, "0") + "秒";
    });
  }
  // The browser clock may differ from the server's (demo clocks): count down only when they agree.
  var serverNow = document.body.dataset.now;
  if (!serverNow || Math.abs(new Date(serverNow) - Date.now()) < 120000) { tick(); setInterval(tick, 1000); }
  document.addEventListener("submit", function (e) {
    var msg = e.target.dataset.confirm;
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
})();
// Choosing a patient preselects that patient's usual insurance type.
document.addEventListener("change", function (e) {
  var ins = e.target.dataset && e.target.dataset.insurance;
  if (e.target.name === "patient_id" && ins) {
    var radio = document.querySelector('input[name="insurance_type"][value="' + ins + '"]');
    if (radio) { radio.checked = true; }
  }
});
