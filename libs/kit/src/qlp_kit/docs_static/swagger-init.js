// Starts Swagger UI on /docs. A file, not an inline script: the page's
// Content-Security-Policy allows scripts from the platform itself only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var presets = [SwaggerUIBundle.presets.apis];
  if (SwaggerUIBundle.SwaggerUIStandalonePreset) {
    presets.push(SwaggerUIBundle.SwaggerUIStandalonePreset);
  }
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge from an online validator: nothing leaves the platform.
    validatorUrl: null,
    presets: presets,
  });
})();
