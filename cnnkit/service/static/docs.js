// Swagger UI for /openapi.json; a file of its own because the page's Content-Security-Policy refuses inline scripts.
// validatorUrl null: no badge fetched from validator.swagger.io.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
