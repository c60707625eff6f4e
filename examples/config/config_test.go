// Package config holds the documented example config files of the
// standard pipeline. It is a module of its own so that the YAML library
// its test uses never enters the library's go.mod: resilient.Duration
// decodes from YAML through encoding.TextUnmarshaler alone.
package config

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/resilient-go/resilient"
)

func decodeYAML(data []byte) (resilient.Config, error) {
	var c resilient.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt name is an error, not a default
	err := dec.Decode(&c)
	return c, err
}

// The YAML file says what the JSON file says, and both give options.
func TestYAMLMatchesJSON(t *testing.T) {
	y, err := os.ReadFile("resilient.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := decodeYAML(y)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile("resilient.json")
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON resilient.Config
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Errorf("YAML %+v\n JSON %+v", fromYAML, fromJSON)
	}
	if _, err := fromYAML.Options(); err != nil {
		t.Error(err)
	}
}

func TestYAMLErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"retry:\n  initial_delay: soon\n", `"soon" is not a duration`},
		{"retry:\n  max_attempt: 2\n", "field max_attempt not found"},
		{"attempt_timeout: 250\n", "is not a duration"},
		{"breaker:\n  failure_ratio: 7\n", "resilient: config breaker.failure_ratio: must be in [0, 1], got 7"},
		{"attempt_timeout: -1s\n", "resilient: config attempt_timeout: needs a positive duration, got -1s"},
	} {
		c, err := decodeYAML([]byte(tc.doc))
		if err == nil {
			_, err = c.Options()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.doc, err, tc.want)
		}
	}
}
