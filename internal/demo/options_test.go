package demo

import (
	"testing"
	"time"
)

// TestOptionsNoneIsExplicit checks that a zero duration is its default,
// that none is said by NoThink and NoMinWarm, and that a negative one is
// refused rather than taken to mean none.
func TestOptionsNoneIsExplicit(t *testing.T) {
	f := func(o *Options, think, minWarm time.Duration, valid bool) {
		t.Helper()
		c := o.withDefaults()
		if c.Think != think || c.MinWarm != minWarm {
			t.Errorf("%+v: think %v, min warm %v; want %v, %v", *o, c.Think, c.MinWarm, think, minWarm)
		}
		if err := c.validate(); (err == nil) != valid {
			t.Errorf("%+v: validate %v, want valid %t", *o, err, valid)
		}
	}
	f(&Options{}, 40*time.Millisecond, 10*time.Second, true)
	f(&Options{Think: time.Millisecond, MinWarm: time.Second}, time.Millisecond, time.Second, true)
	f(&Options{NoThink: true, NoMinWarm: true}, 0, 0, true)
	f(&Options{NoThink: true, Think: time.Second, NoMinWarm: true, MinWarm: time.Minute}, 0, 0, true)
	f(&Options{Think: -1}, -1, 10*time.Second, false)
	f(&Options{MinWarm: -1}, 40*time.Millisecond, -1, false)
}
