package benchkit

import (
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		xs := append([]float64(nil), tt.xs...)
		if got := Median(tt.xs); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
		for i := range xs {
			if xs[i] != tt.xs[i] {
				t.Errorf("Median sorted its argument: %v", tt.xs)
			}
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestFreePort_Listenable(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	_ = l.Close()
}

func TestNATSConfig_AsDeployHasIt(t *testing.T) {
	conf := string(NATSConfig("/data/x", 4333))
	for _, want := range []string{"listen: 127.0.0.1:4333\n", "max_payload: 8MB\n", `store_dir: "/data/x/jetstream"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
}
