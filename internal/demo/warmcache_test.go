package demo

import (
	"strings"
	"testing"
)

func TestWarmFromCacheRejectsABadRehearseRule(t *testing.T) {
	_, err := WarmFromCache(t.Context(), "ws://127.0.0.1:1/sync", "", "http://127.0.0.1:1", &WarmOptions{Rehearse: []string{"workspace"}}, discard)
	if err == nil || !strings.Contains(err.Error(), `rehearse rule "workspace"`) {
		t.Fatalf("err = %v, want the rule named", err)
	}
}
