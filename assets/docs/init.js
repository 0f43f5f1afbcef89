// Starts Swagger UI on /docs. Kept out of index.html so that the page's
// Content-Security-Policy can forbid inline scripts.
"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Remember the bearer token (in this browser's localStorage) across reloads.
    persistAuthorization: true,
    // Never ask the online validator: the page must work with no network.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
