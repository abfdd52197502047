package webhook_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/baton-dev/baton/pkg/webhook"
)

func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	done := make(chan webhook.Outcome, 1)
	s := webhook.New(webhook.Config{}, func(o webhook.Outcome) { done <- o })
	defer s.Stop()
	s.Send(srv.URL, "wf-1", []byte(`{"workflow":"wf-1","status":"needs_attention"}`))
	o := <-done
	fmt.Println(o.Key, o.Status, o.Attempts, o.Err)
	// Output: wf-1 204 1 <nil>
}
