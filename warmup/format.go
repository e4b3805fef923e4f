package warmup

import "fmt"

// fmtRate formats a replay rate limit; negative is unlimited.
func fmtRate(r float64) string {
	if r < 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f msg/s", r)
}
