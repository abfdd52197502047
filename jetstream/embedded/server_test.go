package embedded_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-dev/baton/jetstream/embedded"
)

func TestStartNode_RefusesAStoreInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := embedded.StartNode(embedded.Config{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = embedded.StartNode(embedded.Config{Port: -1, StoreDir: dir})
	if !errors.Is(err, embedded.ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second node on %s: %v, want ErrInUse naming the directory", dir, err)
	}
	first.Close()
	again, err := embedded.StartNode(embedded.Config{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}

func TestStart_AddressInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = embedded.Start(embedded.Config{Port: port, StoreDir: t.TempDir()})
	if !errors.Is(err, embedded.ErrServer) || !strings.Contains(err.Error(), "address already in use") ||
		!strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("start on a taken port: %v, want an address-in-use error naming it", err)
	}
}
