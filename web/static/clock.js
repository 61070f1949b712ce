// Ticking times: "Waiting" and "Expires in" count on while the page is open, as the server would
// render them now. Elements carry data-since / data-until (Unix seconds, the server's clock); the
// page's data-now says what the server's clock read, so a browser whose clock is off still shows the
// right durations. Without this script the times are as of the page's rendering.
(function () {
  "use strict";
  var root = document.querySelector("[data-now]");
  if (!root) return;
  var offset = parseFloat(root.getAttribute("data-now")) - Date.now() / 1000;
  var SOON = 300;  // seconds: the server marks requests this close to expiry

  function age(seconds) {  // as the server's `age` filter says it: 45 s, 12 min, 3 h, 2 d
    seconds = Math.abs(seconds);
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return Math.round(seconds / units[i][1]) + " " + units[i][0];
    }
    return Math.round(seconds) + " s";
  }

  function tick() {
    var now = Date.now() / 1000 + offset;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = age(now - parseFloat(el.getAttribute("data-since")));
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      var left = parseFloat(el.getAttribute("data-until")) - now;
      el.textContent = left > 0 ? age(left) : "now";
      var cell = el.closest("td");
      if (cell) cell.classList.toggle("soon", left < SOON);
    });
  }
  tick();
  setInterval(tick, 1000);
})();
