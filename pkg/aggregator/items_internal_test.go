package aggregator

import (
	"reflect"
	"testing"
)

// FuzzItems: a result's data spread into items is the same whether it
// took the plain-number path or encoding/json's, whatever the bytes.
func FuzzItems(f *testing.F) {
	for _, s := range []string{"0", "-0", "12", "-3.25", "1e3", "2E-5", "1.5e308", "1e400", "-1e-400", "01", "1.", ".5", "-",
		"+1", " 1", "1 ", "0x10", "1_000", "Inf", "NaN", "1e", "1e+", `"1"`, "[1,2]", "true", "null", "{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := items(data), decodedItems(data)
		if len(data) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("items(%q) = %#v, encoding/json gives %#v", data, got, want)
		}
	})
}

// TestPlainNumber: what takes the plain-number path, and what is left to
// encoding/json.
func TestPlainNumber(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "-0", "7", "-12.5", "3e2", "1E+2", "4.5e-3"} {
		if _, ok := plainNumber([]byte(s)); !ok {
			t.Errorf("%q not read as a plain number", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "+1", " 1", "1 ", "0x10", "1_000", "Inf", "1e", "1e400", `"1"`, "[1]"} {
		if _, ok := plainNumber([]byte(s)); ok {
			t.Errorf("%q read as a plain number", s)
		}
	}
}
