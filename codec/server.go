package codec

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// DefaultMaxBodyBytes bounds a codec server request unless
// ServerConfig.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// ServerConfig configures the codec server handler.
type ServerConfig struct {
	// Namespace is the one Temporal namespace served: a request whose
	// X-Namespace header names another is refused. Required.
	Namespace string
	// AllowedOrigins are the browser origins (the Web UI's, such as
	// http://localhost:8233) allowed to call the server across origins.
	// Default none: only non-browser clients.
	AllowedOrigins []string
	// Token, when set, must come with every request as
	// "Authorization: Bearer <Token>"; compared in constant time. Default
	// none.
	Token string
	// MaxBodyBytes bounds a request body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

func (c *ServerConfig) setDefaults() {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// Validate reports every problem of the configuration at once.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace must not be empty"))
	}
	for _, o := range c.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") {
			errs = append(errs, fmt.Errorf("origin %q: want scheme://host[:port] without a path", o))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("max body bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// NewServer returns the handler of the Temporal codec server protocol for
// c: POST /encode and POST /decode take and return a JSON Payloads message
// ({"payloads": [...]}) for the namespace in the X-Namespace header. The
// protocol itself is the SDK's converter.NewPayloadCodecHTTPHandler; this
// handler puts CORS for the Web UI, the bearer token, the namespace check
// and the body limit in front of it. Bad bodies get 400 with the reason.
func NewServer(c *Codec, cfg ServerConfig) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &server{cfg: cfg, protocol: converter.NewPayloadCodecHTTPHandler(c)}, nil
}

type server struct {
	cfg      ServerConfig
	protocol http.Handler
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(s.cfg.AllowedOrigins, origin) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Max-Age", "600")
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions {
			// A preflight carries no credentials: answer it before the
			// token check.
			w.WriteHeader(http.StatusNoContent)
			return
		}
	} else if r.Method == http.MethodOptions {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if r.URL.Path != "/encode" && r.URL.Path != "/decode" {
		http.Error(w, "not found: the codec server serves POST /encode and POST /decode", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
		return
	}
	if s.cfg.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sagaflow codec server"`)
		http.Error(w, "unauthorized: missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	switch ns := r.Header.Get("X-Namespace"); ns {
	case "":
		http.Error(w, "bad request: missing X-Namespace header", http.StatusBadRequest)
		return
	case s.cfg.Namespace:
	default:
		http.Error(w, fmt.Sprintf("forbidden: namespace %q is not served here", ns), http.StatusForbidden)
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		http.Error(w, fmt.Sprintf("request body of %d bytes exceeds the limit of %d", r.ContentLength, s.cfg.MaxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("request body exceeds the limit of %d bytes", s.cfg.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.protocol.ServeHTTP(w, r)
}

// authorized compares the bearer token in constant time.
func (s *server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}
