package main

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
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
