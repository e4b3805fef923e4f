package counts

import "testing"

func TestFormatSortsByReason(t *testing.T) {
	if got := Format(map[string]uint64{"unknown": 3, "mutating": 12}); got != "(mutating 12, unknown 3)" {
		t.Errorf("Format = %q", got)
	}
	if got := Format(nil); got != "" {
		t.Errorf("Format(nil) = %q, want empty", got)
	}
	if got := Sum(map[string]uint64{"a": 2, "b": 5}); got != 7 {
		t.Errorf("Sum = %d", got)
	}
}

func TestByKindListsTheMostFrequentKindsOfEachReason(t *testing.T) {
	m := map[string]map[string]uint64{
		"mutating": {"updateTask": 12, "deleteTask": 3, "createTask": 3, "": 1},
		"unknown":  {"frob": 2},
	}
	want := `mutating: "updateTask" 12, "createTask" 3, 2 more kinds; unknown: "frob" 2`
	if got := ByKind(m, 2); got != want {
		t.Errorf("ByKind = %q\nwant      %q", got, want)
	}
	if got := ByKind(nil, 2); got != "none" {
		t.Errorf("ByKind(nil) = %q", got)
	}
}
