// Package config owns mailbrake's typed configuration: the Config struct with
// its doc tags and defaults, YAML loading that reports every error with its
// key path (unknown keys are errors), and the annotated example generated
// from the struct. It does not know what facts the rules may test; the engine
// checks that when it compiles the rules.
package config
