package daemon

import (
	"log/slog"
	"testing"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/milter"
)

// TestMilterOnErrorAnswer: milter.on_error is the answer the milter gives
// when a decision fails.
func TestMilterOnErrorAnswer(t *testing.T) {
	for on, want := range map[config.MilterOnError]milter.DecisionKind{config.MilterTempfail: milter.TempFail, config.MilterAccept: milter.Accept} {
		cfg := config.Default()
		cfg.Milter.OnError = on
		d := &Daemon{cfg: cfg, log: slog.New(slog.DiscardHandler)}
		if got := d.milterServer().OnError.Kind; got != want {
			t.Errorf("on_error %s: answers %v, want %v", on, got, want)
		}
	}
}
