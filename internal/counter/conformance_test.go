package counter_test

import (
	"testing"

	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/counter/countertest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestConformance: the in-memory counters pass the suite the shared
// counters of cluster mode pass (a second node of one Memory is the same
// Memory: one process).
func TestConformance(t *testing.T) {
	countertest.Run(t, func(t *testing.T) (store.Counters, func() store.Counters) {
		m := counter.NewMemory()
		return m, func() store.Counters { return m }
	})
}
