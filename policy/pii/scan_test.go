package pii

import "testing"

// The scans are tested case by case in policy/screen (TestScanTextDetectsEachKind,
// TestScanNumbers), whose fixtures build the identifiers; here, what the gate relies on.

func TestKindsDescribeTheirFirstFormat(t *testing.T) {
	if got := (Mobile | Email).Description(); got != "a mainland mobile number" {
		t.Errorf("Description = %q", got)
	}
	if got := Kinds(0).Description(); got != "" {
		t.Errorf("empty set described as %q", got)
	}
	if got := (ResidentID | BankCard).Each(); len(got) != 2 || got[0] != ResidentID || got[1] != BankCard {
		t.Errorf("Each = %v", got)
	}
	for _, d := range kinds {
		if d.kind.Description() == "" {
			t.Errorf("kind %05b has no description", d.kind)
		}
	}
}

func TestScanTextFindsSeparatedDigits(t *testing.T) {
	if got := ScanText("call 138 1234 5678"); got != Mobile {
		t.Errorf("ScanText = %05b, want mobile", got)
	}
	if got := ScanText("district 0042"); got != 0 {
		t.Errorf("ScanText = %05b, want none", got)
	}
}

// BenchmarkScanText is the identifier scan of one group-key string.
func BenchmarkScanText(b *testing.B) {
	for b.Loop() {
		ScanText("昆明市 District 0042")
	}
}
