package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/codec"
)

// envCodecAuth holds the codec server's bearer token; an environment
// variable rather than a flag keeps it out of process listings.
const envCodecAuth = "SAGAFLOW_CODEC_AUTH"

func (a *app) codecServerCommand() *cobra.Command {
	c := newCommand("codec-server", "Serve the Temporal codec server protocol so the Web UI shows decrypted payloads")
	c.Long = `codec-server decrypts payloads for the Temporal Web UI (and the Temporal CLI's
--codec-endpoint): POST /encode and POST /decode for the namespace in the
X-Namespace header, with the keys of --codec-keys. Point the UI at it, e.g.
temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8081.

It is a process of its own, not part of the worker: it serves people's
browsers, holds the keys where no worker needs to listen, and scales and
restarts apart from the sagas. With SAGAFLOW_CODEC_AUTH set, every request
must carry "Authorization: Bearer <token>".`
	c.Args = cobra.NoArgs
	listen := c.Flags().String("listen", a.env("SAGAFLOW_CODEC_LISTEN", "127.0.0.1:8081"), "host:port to listen on (env SAGAFLOW_CODEC_LISTEN)")
	origins := c.Flags().String("ui-origin", a.env("SAGAFLOW_CODEC_ORIGINS", ""), "comma-separated browser origins allowed by CORS (default: the origin of --ui-url) (env SAGAFLOW_CODEC_ORIGINS)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := a.codecServerConfig(*origins)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return a.serveCodec(ctx, *listen, cfg)
	}
	return c
}

// env is the value of an environment variable, or def when unset.
func (a *app) env(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// codecServerConfig checks the settings of codec-server.
func (a *app) codecServerConfig(origins string) (codec.ServerConfig, error) {
	if !a.codec.Enabled() {
		return codec.ServerConfig{}, usagef("codec-server needs keys: set --codec-keys or %s", codec.EnvKeys)
	}
	cfg := codec.ServerConfig{Namespace: a.cfg.Namespace, Token: a.getenv(envCodecAuth)}
	if origins == "" {
		u, err := url.Parse(a.cfg.UIURL)
		if err != nil {
			return cfg, usagef("--ui-url %q: %v", a.cfg.UIURL, err)
		}
		origins = u.Scheme + "://" + u.Host
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, &usageError{fmt.Errorf("--ui-origin: %w", joinLines(err))}
	}
	return cfg, nil
}

// serveCodec serves the codec server on listen until ctx ends.
func (a *app) serveCodec(ctx context.Context, listen string, cfg codec.ServerConfig) error {
	h, err := codec.NewServer(a.codec, cfg)
	if err != nil {
		return &usageError{joinLines(err)}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("codec server: listen on %s: %w", listen, err)
	}
	auth := "no token"
	if cfg.Token != "" {
		auth = "bearer token from " + envCodecAuth
	}
	a.printf("Codec server for namespace %s on http://%s (keys %s; CORS for %s; %s)\n",
		cfg.Namespace, ln.Addr(), strings.Join(a.codec.KeyIDs(), ", "), strings.Join(cfg.AllowedOrigins, ", "), auth)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("codec server: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("codec server: shut down: %w", err)
		}
		return nil
	}
}
