// Starts ReDoc on /redoc. A file, not an inline script: the page's
// Content-Security-Policy allows scripts from the platform itself only.
(function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-openapi-url"), { disableSearch: false }, root);
})();
