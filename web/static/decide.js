// The Decide form: once the arguments differ from what the agent asked for, the primary button
// approves the edits ("Approve with edits"), so an edit is never dropped by a plain Approve. The
// form works without this script: the server then asks which was meant.
(function () {
  "use strict";
  // Opened from the queue's keys (r: reject, e: edit): the field they are about gets the focus.
  var wanted = { "#reason": "reason", "#edited-args": "edited-args" }[window.location.hash];
  if (wanted && document.getElementById(wanted)) document.getElementById(wanted).focus();
  var asked = document.getElementById("asked-args");
  var edited = document.getElementById("edited-args");
  var approve = document.getElementById("approve-button");
  var separate = document.getElementById("edit-button");
  var hint = document.getElementById("edit-hint");
  if (!asked || !edited || !approve) return;

  function canonical(value) {  // JSON with sorted keys: key order and spacing are not edits
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (key) {
        return JSON.stringify(key) + ":" + canonical(value[key]);
      }).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  var original = canonical(JSON.parse(asked.textContent));
  var plainLabel = approve.textContent;

  function changed() {
    try {
      return canonical(JSON.parse(edited.value)) !== original;
    } catch (error) {
      return true;  // unreadable JSON is an edit too: the server says what is wrong with it
    }
  }

  function update() {
    var isEdited = changed();
    approve.textContent = isEdited ? approve.getAttribute("data-edit-label") : plainLabel;
    approve.value = isEdited ? "edit" : "approve";
    approve.classList.toggle("edited", isEdited);
  }

  if (separate) separate.hidden = true;  // the primary button does both
  if (hint) hint.textContent = "Edit the arguments and Approve becomes Approve with edits.";
  edited.addEventListener("input", update);
  update();
})();
