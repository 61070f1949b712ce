// The request page, live: the moment anyone else decides this request (or it expires, or its agent
// stops waiting), a banner says who and when, and the Decide form is disabled, instead of a 409
// after the reviewer presses a button. The page works without this script.
(function () {
  "use strict";
  var page = document.querySelector("[data-request-id]");
  if (!page || !window.EventSource) return;
  var id = page.getAttribute("data-request-id");
  var source = new EventSource("/events");
  source.addEventListener("decided", function (message) {
    var data = JSON.parse(message.data);
    if (data.id !== id) return;
    source.close();
    var banner = document.getElementById("decided-banner");
    banner.querySelector(".said").textContent = data.said;  // text, never markup
    banner.hidden = false;
    var form = document.getElementById("decide-form");
    if (form) {
      form.querySelectorAll("button, textarea, input").forEach(function (el) { el.disabled = true; });
      form.setAttribute("aria-disabled", "true");
    }
    banner.focus();
  });
})();
