// The queue from the keyboard. j / k move the selection, Enter opens the request, a approves it,
// r opens it to reject (the reason field focused), e opens it to edit the arguments, x ticks its box
// for a bulk decision, A (shift-a) approves every ticked row, ? shows these keys. Nothing fires while
// typing in a field, or with Ctrl, Alt or Cmd held. The page works without this script.
(function () {
  "use strict";
  var table = document.getElementById("requests");
  var help = document.getElementById("keys-help");
  if (!table) return;
  var body = table.querySelector("tbody");
  var bulk = document.getElementById("bulk-form");
  var count = document.getElementById("selected-count");
  var current = null;

  function rows() { return Array.prototype.slice.call(body.querySelectorAll("tr[data-id]")); }

  function select(row) {
    if (current) { current.classList.remove("selected"); current.removeAttribute("aria-current"); }
    current = row || null;
    if (!current) return;
    current.classList.add("selected");
    current.setAttribute("aria-current", "true");
    current.scrollIntoView({ block: "nearest" });
    var link = current.querySelector("a.action");
    if (link) link.focus({ preventScroll: true });
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = current && all.indexOf(current) >= 0 ? all.indexOf(current) + step : (step > 0 ? 0 : all.length - 1);
    select(all[Math.max(0, Math.min(all.length - 1, index))]);
  }

  function ticked() {  // requests, not rows: a group's box stands for each of its identical requests
    var n = 0;
    body.querySelectorAll("input[type=checkbox][form=bulk-form]:checked").forEach(function (box) {
      n += box.value.split(" ").length;
    });
    return n;
  }

  function showCount() {
    if (count) count.textContent = ticked() ? ticked() + " selected" : "";
  }

  function open(anchor) {
    var link = current && current.querySelector("a.action");
    if (link) window.location.href = link.getAttribute("href") + (anchor || "");
  }

  body.addEventListener("change", showCount);
  body.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-id]");
    if (row && event.target.tagName !== "INPUT" && event.target.tagName !== "BUTTON") select(row);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (help && help.open && event.key !== "?") return;
    var key = event.key;
    if (key === "j") move(1);
    else if (key === "k") move(-1);
    else if (key === "Enter" && current && target.tagName !== "BUTTON") open("");
    else if (key === "r") open("#reason");
    else if (key === "e") open("#edited-args");
    else if (key === "a" && current) {
      var approve = current.querySelector("button.approve");
      if (approve) approve.click();
    } else if (key === "x" && current) {
      var box = current.querySelector("input[type=checkbox]");
      if (box) { box.checked = !box.checked; showCount(); }
    } else if (key === "A" && bulk && ticked()) {
      bulk.querySelector("button[value=approve]").click();
    } else if (key === "?" && help) {
      if (help.open) help.close(); else help.showModal();
    } else return;
    event.preventDefault();
  });
})();
