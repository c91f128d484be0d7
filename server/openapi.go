package server

import (
	_ "embed"
	"net/http"
)

// openapiDoc describes the API; TestOpenAPIMatchesRoutes keeps it true to routes().
//
//go:embed openapi.json
var openapiDoc []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDoc)
}
