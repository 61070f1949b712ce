// Filters apply as soon as a choice changes (text fields still apply on Enter), and the address keeps
// only what is set, so it reads well and can be shared. The Filter button stays for pages without
// this script.
(function () {
  "use strict";
  function apply(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      // An empty queue is kept: "all queues" is a choice (a reviewer limited to some starts on theirs).
      if ((value === "" && key !== "queue") || (key === "sort" && value === "oldest")) return;
      params.append(key, value);
    });
    var query = params.toString();
    window.location.href = form.getAttribute("action") + (query ? "?" + query : "");
  }
  document.querySelectorAll("form.filter[method=get]").forEach(function (form) {  // not the runs page's Start form
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(form); });
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { apply(form); });
    });
  });
})();
