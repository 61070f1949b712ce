// An undo window for decisions made from the queue list: Approve (or the bulk buttons) waits
// UNDO_SECONDS before the form is sent, showing a countdown and an Undo button. Nothing is written
// until the window ends, so Undo simply does not send; closing the page meanwhile sends nothing
// either. Decisions from a request's own page, and every decision without this script, are sent at once.
(function () {
  "use strict";
  var UNDO_SECONDS = 5;
  var table = document.getElementById("requests");
  if (!table) return;
  var bar = document.createElement("div");
  bar.className = "undo-bar";
  bar.setAttribute("role", "status");
  bar.hidden = true;
  bar.innerHTML = '<span class="undo-text"></span> <button type="button" class="undo">Undo</button>';
  document.body.appendChild(bar);
  var pending = null;

  function cancel() {
    if (!pending) return;
    clearInterval(pending.timer);
    pending.row && pending.row.classList.remove("deciding");
    pending = null;
    bar.hidden = true;
  }

  bar.querySelector("button.undo").addEventListener("click", cancel);
  document.addEventListener("keydown", function (event) {
    if (pending && (event.key === "z" || event.key === "u" || event.key === "Escape")) { cancel(); event.preventDefault(); }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var inList = form.closest("#requests") || form.id === "bulk-form";
    if (!inList || !button || form.hasAttribute("data-undo-passed")) return;
    event.preventDefault();
    cancel();  // one decision in its window at a time: a second click starts over with the new one
    var row = form.closest("tr");
    var group = form.getAttribute("data-group-of");  // a row of identical requests: each of them
    var what = form.id === "bulk-form" ? button.textContent.toLowerCase()
      : group ? "approving " + form.querySelectorAll("input[name=id]").length + " × " + group
      : "approving " + row.querySelector("a.action").textContent;
    var left = UNDO_SECONDS;
    pending = { row: row, timer: null };
    if (row) row.classList.add("deciding");
    function show() { bar.querySelector(".undo-text").textContent = what.charAt(0).toUpperCase() + what.slice(1) + " in " + left + " s"; }
    show();
    bar.hidden = false;
    pending.timer = setInterval(function () {
      left -= 1;
      if (left > 0) { show(); return; }
      clearInterval(pending.timer);
      pending = null;
      bar.querySelector(".undo-text").textContent = "Sending...";
      form.setAttribute("data-undo-passed", "yes");
      // requestSubmit keeps the pressed button's name and value (outcome=approve / reject)
      form.requestSubmit(button);
    }, 1000);
  }, true);
})();
