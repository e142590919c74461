package main

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// startDebug serves Go's pprof endpoints (/debug/pprof/...) on addr, for profiling a running
// broker: go tool pprof http://ADDR/debug/pprof/profile?seconds=30
func startDebug(addr string, log zerolog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		log.Info().Str("addr", addr).Msg("serving pprof profiles")
		if err := srv.ListenAndServe(); err != nil {
			log.Error().Err(err).Str("addr", addr).Msg("debug listener stopped")
		}
	}()
}
