// Starts Swagger UI (served from this origin, see rag/serve/apidocs.py) on this server's schema.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The UI would otherwise send the schema to a public validator and show its badge.
  validatorUrl: null,
});
