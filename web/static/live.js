// Live queue: rows appear when agents ask and disappear when anyone decides, without a reload.
// The page works without this script; it only keeps the table current.
(function () {
  "use strict";
  var table = document.getElementById("requests");
  if (!table || !window.EventSource) return;
  var body = table.querySelector("tbody");
  var queues = table.getAttribute("data-queues") ? table.getAttribute("data-queues").split(",") : null;
  var filtered = table.getAttribute("data-filtered") === "yes";  // other filters: new rows wait for a reload
  var total = document.getElementById("total");
  var empty = document.getElementById("empty");
  var live = document.getElementById("live");

  function refreshCounts(delta) {
    if (total) total.textContent = String(Math.max(0, parseInt(total.textContent, 10) + delta));
    if (empty) empty.hidden = body.children.length > 0;
  }

  var source = new EventSource("/events");
  source.addEventListener("open", function () { if (live) live.hidden = false; });
  source.addEventListener("error", function () { if (live) live.hidden = true; });
  source.addEventListener("created", function (message) {
    var data = JSON.parse(message.data);
    if (!data.html || filtered || document.getElementById("row-" + data.id)) return;
    if (queues && queues.indexOf(data.queue) < 0) return;
    var holder = document.createElement("tbody");
    holder.innerHTML = data.html;  // rendered and escaped by the server's templates
    var row = holder.firstElementChild;
    row.classList.add("new");
    body.appendChild(row);  // the queue is oldest first: a new request goes last
    refreshCounts(1);
  });
  // Grouped rows stand for several identical requests: each one decided takes one off its row.
  var groups = {};
  body.querySelectorAll("tr[data-ids]").forEach(function (row) {
    row.getAttribute("data-ids").split(" ").forEach(function (id) { groups[id] = row; });
  });

  function leaveGroup(row, id) {  // true when the row still stands for other requests
    delete groups[id];
    var ids = row.getAttribute("data-ids").split(" ").filter(function (other) { return other !== id; });
    if (!ids.length) return false;
    row.setAttribute("data-ids", ids.join(" "));
    row.querySelectorAll("input[type=hidden][name=id]").forEach(function (input) {
      if (input.value === id) input.parentNode.removeChild(input);
    });
    var box = row.querySelector("input[type=checkbox][name=ids]");
    if (box) box.value = box.value.split(" ").filter(function (other) { return other !== id; }).join(" ") || ids[0];
    row.querySelectorAll(".n").forEach(function (n) { n.textContent = String(ids.length); });
    refreshCounts(-1);
    return true;
  }

  source.addEventListener("decided", function (message) {
    var data = JSON.parse(message.data);
    var row = groups[data.id] || document.getElementById("row-" + data.id);
    if (!row) return;
    if (row.hasAttribute("data-ids") && leaveGroup(row, data.id)) return;
    var box = row.querySelector("input[type=checkbox]:checked");
    if (box) {  // selected for a bulk decision: say what became of it rather than vanish from the selection
      box.checked = false;
      box.disabled = true;
      row.classList.add("gone");
      row.querySelectorAll("form button").forEach(function (button) { button.disabled = true; });
      var note = document.createElement("div");
      note.className = "hint said";
      note.textContent = data.said || "Decided elsewhere";
      row.querySelector("td:nth-child(2)").appendChild(note);
      box.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    row.parentNode.removeChild(row);
    refreshCounts(-1);
  });
})();
