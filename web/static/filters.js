// Filters apply as soon as a choice changes (text fields still apply on Enter); the Filter button
// stays for pages without this script.
(function () {
  "use strict";
  document.querySelectorAll("form.filter select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
