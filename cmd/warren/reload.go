package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
)

// reportRestartNeeded logs, in one warning per reload, the settings that changed in the
// configuration since the broker started but take effect only at a restart, and returns the
// same as a line for `warren config reload` to print ("" when there are none).
func reportRestartNeeded(log zerolog.Logger, running, next *configs.Broker) string {
	keys := configs.NeedRestart(running, next)
	if len(keys) == 0 {
		return ""
	}
	log.Warn().Strs("settings", keys).Str("config", next.File).
		Msg("reload: these settings changed in the configuration but take effect only at a restart; the broker runs with the old values")
	return fmt.Sprintf("not applied until a restart: %s\n", strings.Join(keys, ", "))
}

// loadDefinitions re-reads the configuration (for its list of definitions files, which flags
// such as --definitions may set) and the definitions files, as they are now.
func loadDefinitions(configPath string, apply func(*configs.Broker) error) (*configs.Broker, *configs.Definitions, error) {
	b, err := loadBroker(configPath, apply)
	if err != nil {
		return nil, nil, err
	}
	defs := &configs.Definitions{}
	if len(b.Definitions) > 0 {
		if defs, err = configs.LoadDefinitions(b.Definitions...); err != nil {
			return nil, nil, err
		}
	}
	return b, defs, nil
}

// driftText is the drift control command: the definitions files, read again now, compared
// with the live broker, one object a line ("no drift" when they agree).
func driftText(srv *server.Server) (string, error) {
	d, err := srv.DefinitionsDrift()
	if err != nil {
		return "", fmt.Errorf("the definitions files do not load: %w", err)
	}
	var b strings.Builder
	line := func(what string, it server.DriftItem, detail string) {
		fmt.Fprintf(&b, "%s: %s %s", what, it.Kind, it.Name)
		if it.Vhost != "" {
			fmt.Fprintf(&b, " in vhost %s", it.Vhost)
		}
		b.WriteString(detail + "\n")
	}
	for _, it := range d.OnlyLive {
		line("only live", it, "")
	}
	for _, it := range d.OnlyInFiles {
		line("only in the files", it, "")
	}
	for _, it := range d.Different {
		files, _ := json.Marshal(it.Files)
		live, _ := json.Marshal(it.Live)
		line("different", it, fmt.Sprintf(": files %s, live %s", files, live))
	}
	if b.Len() == 0 {
		return "no drift\n", nil
	}
	return b.String(), nil
}
