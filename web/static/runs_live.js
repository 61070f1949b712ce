// Live runs list: the runs page's list (its state tab and page) is redrawn by the server as runs are
// queued, start, wait for approval and end. The page works without this script; it only keeps the
// list current. All HTML comes from the server's (autoescaping) templates.
(function () {
  "use strict";
  var list = document.getElementById("runs-list");
  if (!list || !window.EventSource) return;
  var live = document.getElementById("live");
  var query = new URLSearchParams({ state: list.getAttribute("data-state"), page: list.getAttribute("data-page") });
  var source = new EventSource("/runs/events?" + query.toString());
  source.addEventListener("open", function () { if (live) live.hidden = false; });
  source.addEventListener("error", function () { if (live) live.hidden = true; });
  source.addEventListener("list", function (message) {
    // Keep the keyboard where it was: the same link, if it is still there after the redraw.
    var focused = list.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
    list.innerHTML = JSON.parse(message.data).html;
    if (focused) {
      var again = list.querySelector('a[href="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  });
})();
