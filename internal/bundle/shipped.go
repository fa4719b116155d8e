package bundle

import (
	"os"
	"path/filepath"
)

// EnvModel names the model that commands use when given no model flag; "off"
// means the frozen default backbone.
const EnvModel = "PRODSEARCH_MODEL"

// ShippedPath is where the repository keeps the trained default model.
const ShippedPath = "models/default/model.json"

// FindShipped returns the model to use when no model flag is given:
// $PRODSEARCH_MODEL, else models/default/model.json in the working directory
// or beside the executable's directory (bin/../models), else "" for the
// frozen default backbone. Unlike the model and runtime directories it is
// not searched for in every ancestor, so a test or a tool run inside the
// tree does not pick it up by accident.
func FindShipped() string {
	if p := os.Getenv(EnvModel); p != "" {
		if p == "off" {
			return ""
		}
		return p
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Dir(filepath.Dir(exe)))
	}
	for _, d := range dirs {
		p := filepath.Join(d, filepath.FromSlash(ShippedPath))
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
