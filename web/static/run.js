// Live run page: steps appear as the agent takes them, and the state and approvals follow the run.
// The page works without this script; it only keeps the page current. All HTML comes from the
// server's (autoescaping) templates.
(function () {
  "use strict";
  var status = document.getElementById("run-status");
  var steps = document.getElementById("steps");
  if (!status || !steps || !window.EventSource || status.getAttribute("data-final")) return;
  var live = document.getElementById("live");
  var none = document.getElementById("no-steps");
  var attempt = steps.getAttribute("data-attempt");
  var count = parseInt(steps.getAttribute("data-count"), 10);

  var source = new EventSource("/runs/" + status.getAttribute("data-run") + "/events");
  source.addEventListener("open", function () { if (live) live.hidden = false; });
  source.addEventListener("error", function () { if (live) live.hidden = true; });
  source.addEventListener("restart", function () {
    steps.innerHTML = "";  // another worker took the run over: its steps start afresh
    count = 0;
  });
  source.addEventListener("step", function (message) {
    var data = JSON.parse(message.data);
    if (String(data.attempt) !== attempt) {  // taken over since the page was drawn: start afresh
      steps.innerHTML = "";
      count = 0;
    }
    if (data.index < count) return;  // already on the page
    attempt = String(data.attempt);
    count = data.index + 1;
    var holder = document.createElement("ol");
    holder.innerHTML = data.html;
    while (holder.firstElementChild) {
      holder.firstElementChild.classList.add("new");
      steps.appendChild(holder.firstElementChild);
    }
    if (none) none.hidden = true;
  });
  source.addEventListener("run", function (message) {
    status.innerHTML = JSON.parse(message.data).html;
  });
  source.addEventListener("end", function () {
    source.close();
    if (live) live.hidden = true;
  });
})();
