// Package counts formats the counters a replay keeps by reason and by kind
// (replayer.Stats, loadtest.TargetResult) for log lines, summaries and
// reports, so that a warm-up and a load test say them the same way.
package counts

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Sum adds up counts by reason, such as replayer.Stats.MessagesSkipped.
func Sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// Format formats counts by reason, sorted by reason, as
// "(mutating 12, unknown 3)"; "" for none.
func Format(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// ByKind formats skip counts by reason and kind
// (replayer.Stats.SkippedByKind), the n most frequent kinds of each reason:
// `mutating: "updateTask" 12, "deleteTask" 3; unknown: ...`.
func ByKind(m map[string]map[string]uint64, n int) string {
	reasons := make([]string, 0, len(m))
	for r := range m {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var parts []string
	for _, r := range reasons {
		kinds := make([]string, 0, len(m[r]))
		for k := range m[r] {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool {
			a, b := m[r][kinds[i]], m[r][kinds[j]]
			return a > b || a == b && kinds[i] < kinds[j]
		})
		var ks []string
		for i, k := range kinds {
			if i == n {
				ks = append(ks, fmt.Sprintf("%d more kinds", len(kinds)-n))
				break
			}
			if k == "" {
				k = "(no kind)"
			}
			ks = append(ks, fmt.Sprintf("%s %d", strconv.Quote(k), m[r][kinds[i]]))
		}
		parts = append(parts, r+": "+strings.Join(ks, ", "))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
