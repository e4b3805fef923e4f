package demo

import (
	"fmt"
	"time"
)

// Options configure a demo run. A nil *Options is valid and means every
// default; a zero field means its default.
type Options struct {
	// Dir is the directory of the captured stream. Default a new
	// temporary directory, removed when Run returns unless Keep.
	Dir string
	// Keep keeps the temporary stream directory (for 'preheat inspect').
	// Default false.
	Keep bool
	// Report is the directory the warm report is written to. Default a
	// new temporary directory, kept.
	Report string
	// Clients is how many synthetic clients are connected at once.
	// Default 16.
	Clients int
	// Queries is the queries of each client session. Default 20.
	Queries int
	// Think is each client's pause between a result and its next query.
	// Default 40ms; see NoThink for none.
	Think time.Duration
	// NoThink makes each client send its next query as soon as a result
	// arrives: Think is then 0 whatever it was set to. Default false.
	NoThink bool
	// Scale is the simulated servers' warm-up work as a fraction of the
	// default model's: they warm faster than a real JVM. Default 0.25.
	Scale float64
	// FirstTraffic is how long each server's first traffic is measured.
	// Default 20s.
	FirstTraffic time.Duration
	// Window is the warm-up's signal window (readiness.Options.Window).
	// Default 10s.
	Window time.Duration
	// MinWarm is the warm-up's earliest release. Default 10s; see
	// NoMinWarm for none.
	MinWarm time.Duration
	// NoMinWarm releases the warm-up as soon as its signals allow
	// (readiness.Options.NoMinWarm): MinWarm is then 0 whatever it was set
	// to. Default false.
	NoMinWarm bool
	// CaptureMax is the longest the capture waits for server A to warm.
	// Default 3m.
	CaptureMax time.Duration
	// Deadline is the warm-up's deadline. Default 3m.
	Deadline time.Duration
	// MaxJitter is the warm-up's jitter limit in seconds
	// (readiness.Options.MaxJitter). Default readiness's.
	MaxJitter float64
}

// DefaultOptions returns every default, as a command's flags offer them.
func DefaultOptions() Options { return (*Options)(nil).withDefaults() }

// withDefaults returns a copy of o with every unset field defaulted.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Queries == 0 {
		c.Queries = 20
	}
	if c.NoThink {
		c.Think = 0
	} else {
		def(&c.Think, 40*time.Millisecond)
	}
	if c.Scale == 0 {
		c.Scale = 0.25
	}
	def(&c.FirstTraffic, 20*time.Second)
	def(&c.Window, 10*time.Second)
	if c.NoMinWarm {
		c.MinWarm = 0
	} else {
		def(&c.MinWarm, 10*time.Second)
	}
	def(&c.CaptureMax, 3*time.Minute)
	def(&c.Deadline, 3*time.Minute)
	return c
}

// validate reports the first unusable setting of a defaulted copy.
func (c *Options) validate() error {
	switch {
	case c.Clients < 0 || c.Queries < 0:
		return fmt.Errorf("clients %d and queries %d must be positive", c.Clients, c.Queries)
	case c.Scale < 0 || c.FirstTraffic < 0:
		return fmt.Errorf("scale %v and first traffic %v must be positive", c.Scale, c.FirstTraffic)
	case c.Think < 0 || c.Window < 0 || c.MinWarm < 0 || c.CaptureMax < 0 || c.Deadline < 0:
		return fmt.Errorf("think %v, window %v, min warm %v, capture max %v and deadline %v must not be negative", c.Think, c.Window, c.MinWarm, c.CaptureMax, c.Deadline)
	}
	return nil
}
