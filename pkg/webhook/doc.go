// Package webhook POSTs JSON notifications (a workflow's escalation) to an
// http or https URL without ever blocking its caller: each POST runs on a
// goroutine the Sender owns, with a timeout, a bounded number of attempts
// with backoff, and a bounded number in flight (a notification sent while
// the bound is reached is dropped, and the drop is reported). The outcome
// of every notification goes to the Sender's report function.
//
//	s := webhook.New(webhook.Config{}, func(o webhook.Outcome) { log.Print(o) })
//	defer s.Stop()
//	s.Send("https://hooks.example/baton", "wf-1", payload)
package webhook
