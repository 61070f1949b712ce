// Filters apply as soon as a choice or a box changes (text fields still apply on Enter), and the address keeps
// only what is set, so it reads well and can be shared. The Filter button stays for pages without
// this script.
(function () {
  "use strict";
  function apply(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      // An empty queue is kept: "all queues" is a choice (a reviewer limited to some starts on theirs).
      var field = form.elements[key];
      var fallback = field && field.getAttribute ? field.getAttribute("data-default") : null;  // the page's default
      if ((value === "" && key !== "queue") || value === fallback) return;
      params.append(key, value);
    });
    var query = params.toString();
    window.location.href = form.getAttribute("action") + (query ? "?" + query : "");
  }
  document.querySelectorAll("form.filter[method=get]").forEach(function (form) {  // not the runs page's Start form
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(form); });
    form.querySelectorAll("select, input[type=checkbox]").forEach(function (field) {
      field.addEventListener("change", function () { apply(form); });
    });
  });
})();
